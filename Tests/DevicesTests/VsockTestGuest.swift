import Glibc
import CLinux
import Logging
import Testing
@testable import Devices
@testable import VMM

/// Host-side Unix socket helpers for the vsock tests (non-blocking once connected).
enum VsockHostSocket {
    static func uniquePath() -> String {
        "/tmp/vs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    static func address(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
            raw[bytes.count] = 0
        }
        return address
    }

    static func setNonBlocking(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    /// A connected, non-blocking client socket, or nil.
    static func connect(_ path: String) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = address(path)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            return nil
        }
        setNonBlocking(fd)
        return fd
    }

    static func listen(_ path: String) -> Int32 {
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = address(path)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        precondition(rc == 0, "bind \(path)")
        precondition(Glibc.listen(fd, 256) == 0)
        setNonBlocking(fd)
        return fd
    }

    static func accept(_ listener: Int32) -> Int32? {
        let fd = Glibc.accept(listener, nil, nil)
        guard fd >= 0 else { return nil }
        setNonBlocking(fd)
        return fd
    }

    /// Everything readable now; `eof` when the peer will send no more.
    static func readAvailable(_ fd: Int32, max: Int = 1 << 20) -> (bytes: [UInt8], eof: Bool) {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while out.count < max {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                out += chunk[..<n]
            } else if n == 0 {
                return (out, true)
            } else if errno == EINTR {
                continue
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                return (out, false)
            } else {
                return (out, true)  // ECONNRESET and the like: the stream is over
            }
        }
        return (out, false)
    }

    /// Writes what the socket takes now; returns how many bytes that was (-1: error).
    @discardableResult
    static func writeSome(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Int {
        guard !bytes.isEmpty else { return 0 }
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)) }
        if n < 0 { return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1 }
        return n
    }

    @discardableResult
    static func writeSome(_ fd: Int32, _ bytes: [UInt8]) -> Int { writeSome(fd, bytes[...]) }

    /// The socket inodes (`socket:[N]` and anon inodes) behind `fds`.
    static func links(_ fds: [Int32]) -> Set<String> {
        Set(fds.compactMap { fd in
            var buffer = [CChar](repeating: 0, count: 256)
            let n = readlink("/proc/self/fd/\(fd)", &buffer, 255)
            return n > 0 ? String(cString: Array(buffer[..<n]) + [0]) : nil
        })
    }

    /// Every link target in /proc/self/fd.
    static func openLinks() -> [String] {
        guard let dir = opendir("/proc/self/fd") else { return [] }
        defer { closedir(dir) }
        var result: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            guard let fd = Int32(name) else { continue }
            result += links([fd])
        }
        return result
    }
}

/// Deterministic test data.
func vsockPattern(_ count: Int, seed: Int) -> [UInt8] {
    var state = UInt32(truncatingIfNeeded: seed &* 2654435761 &+ 12345)
    return (0..<count).map { _ in
        state = state &* 1664525 &+ 1013904223
        return UInt8(truncatingIfNeeded: state >> 24)
    }
}

/// One guest stream socket, as the simulated guest driver tracks it.
final class VsockGuestSocket {
    enum State { case connecting, established, reset }

    let guestPort: UInt32
    let hostPort: UInt32
    var state: State
    var received: [UInt8] = []
    /// Our receive buffer as advertised.
    var bufAlloc: UInt32
    var fwdCnt: UInt32 = 0
    var lastSentFwdCnt: UInt32 = 0
    /// Consume (and credit) received data at once, as an application reading eagerly would.
    var autoConsume = true
    /// Bytes received but not yet consumed.
    var unconsumed = 0
    /// The device sent more than our credit allowed.
    var creditViolated = false
    // The host's buffer, from the headers it sends.
    var peerBufAlloc: UInt32 = 0
    var peerFwdCnt: UInt32 = 0
    var txCnt: UInt32 = 0
    var shutdownFlags: UInt32 = 0
    var ops: [VsockPacketHeader.Op] = []
    /// We answered the device's full SHUTDOWN with an RST, as Linux does.
    var sentReset = false

    init(guestPort: UInt32, hostPort: UInt32, state: State, bufAlloc: UInt32) {
        self.guestPort = guestPort
        self.hostPort = hostPort
        self.state = state
        self.bufAlloc = bufAlloc
    }

    var peerCredit: Int {
        let inFlight = txCnt &- peerFwdCnt
        return inFlight >= peerBufAlloc ? 0 : Int(peerBufAlloc - inFlight)
    }

    var gotReset: Bool { state == .reset }
}

/// How the simulated guest lays out one tx packet (header + payload) in descriptors.
enum VsockTxLayout: CaseIterable {
    /// Header and payload in one descriptor (Linux >= 6.3).
    case single
    /// Header, then payload (older Linux).
    case split
    /// Header split in two, the payload's start sharing the second descriptor, then more pieces.
    case scattered
    /// `split`, through an indirect table.
    case indirect
}

/// How the simulated guest lays out one rx buffer.
enum VsockRxLayout {
    /// One writable descriptor of this many bytes (header and payload together).
    case single(Int)
    /// A 44-byte header descriptor, then a payload descriptor of this many bytes.
    case split(Int)
    /// The header straddles two small descriptors; the payload goes on in a third.
    case scattered(Int)

    func buffers(_ driver: VirtioTestDriver) -> [VirtioTestBuffer] {
        switch self {
        case .single(let n):
            return [.writable(driver.allocate(n), UInt32(n))]
        case .split(let n):
            return [.writable(driver.allocate(44), 44), .writable(driver.allocate(n), UInt32(n))]
        case .scattered(let n):
            return [.writable(driver.allocate(20), 20), .writable(driver.allocate(30), 30),
                    .writable(driver.allocate(n), UInt32(n))]
        }
    }
}

/// Plays a Linux guest's virtio-vsock driver (and the sockets above it) against a real
/// `VirtioVsock` through the real virtio-mmio transport, with a real event loop that the
/// test thread runs.
/// A host listener at `<uds>_port` for guest-initiated connections; closed and unlinked
/// when released.
final class VsockHostListener {
    let fd: Int32
    let path: String

    init(_ guest: VsockTestGuest, port: UInt32) {
        path = "\(guest.path)_\(port)"
        fd = VsockHostSocket.listen(path)
    }

    /// Pumps the guest until the device's connection arrives; the host end, or -1.
    func accept(pumping guest: VsockTestGuest) -> Int32 {
        var accepted: Int32 = -1
        _ = guest.pump { accepted = VsockHostSocket.accept(fd) ?? -1; return accepted >= 0 }
        return accepted
    }

    deinit {
        close(fd)
        unlink(path)
    }
}

final class VsockTestGuest {
    static let cid: UInt64 = 3
    static let txSlotSize = 44 + (64 << 10) + 64

    let loop: EventLoop
    let device: VirtioVsock
    let driver: VirtioTestDriver
    let path: String

    private var rxChains: [UInt16: [VirtioTestBuffer]] = [:]
    private var txFree: [UInt64] = []
    private var txInFlight: [UInt16: UInt64] = [:]
    private var nextGuestPort: UInt32 = 40000

    var sockets: [VsockConnectionKey: VsockGuestSocket] = [:]
    /// Guest ports that accept host connections.
    var listening: Set<UInt32> = []
    /// Guest ports that see host REQUESTs but never answer them.
    var ignoring: Set<UInt32> = []
    /// Packets that matched no guest socket (RSTs answering bogus packets, mostly).
    var unmatched: [VsockPacketHeader] = []
    /// Every packet received, in order.
    var log: [VsockPacketHeader] = []
    /// Leave used rx buffers alone (a guest that stopped reading): the device runs dry.
    var holdRx = false
    /// The event loop runs on its own thread (as in the VMM): steps only wait a little.
    var loopThreaded = false
    var defaultBufAlloc: UInt32 = 256 << 10

    init(path: String = VsockHostSocket.uniquePath(), limits: VsockLimits = VsockLimits(),
         rxLayouts: [VsockRxLayout] = [.single(4096 + 44)], rxBuffers: Int = 128, txSlots: Int = 32,
         memoryMiB: UInt64 = 64) throws {
        self.path = path
        loop = try EventLoop()
        device = try VirtioVsock(guestCid: Self.cid, udsPath: path, loop: loop, logger: quietLogger(), limits: limits)
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: memoryMiB << 20))
        driver = try VirtioTestDriver(device: device, memory: memory, eventLoop: false)
        try driver.initialize()
        for _ in 0..<txSlots { txFree.append(driver.allocate(Self.txSlotSize)) }
        // Linux fills the event queue too; the device keeps those buffers.
        for _ in 0..<8 { try driver.add([.writable(driver.allocate(8), 8)], queue: 2) }
        driver.kick(2)
        for i in 0..<rxBuffers {
            let buffers = rxLayouts[i % rxLayouts.count].buffers(driver)
            let head = try driver.add(buffers, queue: 0)
            rxChains[head] = buffers
        }
        driver.kick(0)
    }

    deinit {
        device.close()
        unlink(path)
    }

    // MARK: Running

    /// One round: doorbells, host sockets, then the used rings. Returns how much happened.
    @discardableResult
    func step(waitMs: Int32 = 0) -> Int {
        var progress = driver.runDevice()
        if loopThreaded {
            if waitMs > 0 { usleep(UInt32(waitMs) * 200) }
        } else {
            progress += loop.runOnce(timeoutMs: waitMs)
        }
        for used in driver.getUsed(1) {
            if let slot = txInFlight.removeValue(forKey: UInt16(used.id)) { txFree.append(slot) }
            progress += 1
        }
        let used = holdRx ? [] : driver.getUsed(0)
        for element in used {
            let head = UInt16(element.id)
            guard let buffers = rxChains.removeValue(forKey: head) else { continue }
            var bytes: [UInt8] = []
            var left = Int(element.len)
            for buffer in buffers where left > 0 {
                let n = min(left, Int(buffer.length))
                bytes += driver.bytes(buffer.address, n)
                left -= n
            }
            receive(bytes)
            let again = try! driver.add(buffers, queue: 0)
            rxChains[again] = buffers
            progress += 1
        }
        if !used.isEmpty { driver.kick(0) }
        return progress
    }

    /// Steps until `condition` holds or `seconds` pass; returns whether it held.
    @discardableResult
    func pump(seconds: Double = 5, until condition: () -> Bool) -> Bool {
        let deadline = ProcessClock.monotonicNanos() + UInt64(seconds * 1e9)
        var idle = 0
        while !condition() {
            if ProcessClock.monotonicNanos() > deadline { return false }
            idle = step(waitMs: idle > 2 ? 1 : 0) == 0 ? idle + 1 : 0
        }
        return true
    }

    /// Steps for a while (for "nothing more happens" checks).
    func settle(rounds: Int = 20) {
        for _ in 0..<rounds { step(waitMs: 1) }
    }

    // MARK: Packets

    func header(_ socket: VsockGuestSocket, _ op: VsockPacketHeader.Op, len: UInt32 = 0, flags: UInt32 = 0) -> VsockPacketHeader {
        socket.lastSentFwdCnt = socket.fwdCnt
        return VsockPacketHeader(srcCid: Self.cid, dstCid: 2, srcPort: socket.guestPort, dstPort: socket.hostPort, len: len,
                                 op: op, flags: flags, bufAlloc: socket.bufAlloc, fwdCnt: socket.fwdCnt)
    }

    /// Puts one packet on the tx queue as laid out, and kicks. `claimedLength` overrides
    /// the header's len (a lying guest).
    func send(_ header: VsockPacketHeader, payload: [UInt8] = [], layout: VsockTxLayout = .single) {
        precondition(44 + payload.count <= Self.txSlotSize)
        while txFree.isEmpty { step(waitMs: 1) }
        let slot = txFree.removeLast()
        try! driver.memory.write(header.bytes + payload, at: slot)
        let total = UInt32(44 + payload.count)
        let p = UInt32(payload.count)
        var buffers: [VirtioTestBuffer]
        switch layout {
        case .single:
            buffers = [.readable(slot, total)]
        case .split, .indirect:
            buffers = [.readable(slot, 44)]
            if p > 0 { buffers.append(.readable(slot + 44, p)) }
        case .scattered:
            if p < 8 {
                buffers = [.readable(slot, 30), .readable(slot + 30, total - 30)]
            } else {
                let third = p / 3
                buffers = [.readable(slot, 30), .readable(slot + 30, 14 + 5), .readable(slot + 49, third),
                           .readable(slot + 49 + UInt64(third), total - 49 - third)]
            }
        }
        let head = layout == .indirect ? try! driver.addIndirect(buffers, queue: 1) : try! driver.add(buffers, queue: 1)
        txInFlight[head] = slot
        driver.kick(1)
    }

    /// Raw bytes as a tx chain (for malformed packets).
    func sendRaw(_ bytes: [UInt8]) {
        while txFree.isEmpty { step(waitMs: 1) }
        let slot = txFree.removeLast()
        try! driver.memory.write(bytes, at: slot)
        let head = try! driver.add([.readable(slot, UInt32(max(bytes.count, 1)))], queue: 1)
        txInFlight[head] = slot
        driver.kick(1)
    }

    private func receive(_ bytes: [UInt8]) {
        guard let header = VsockPacketHeader(bytes) else {
            Issue.record("rx packet of \(bytes.count) bytes has no header")
            return
        }
        log.append(header)
        // Only an RST answering a packet for another CID comes from that CID.
        #expect((header.srcCid == 2 || header.knownOp == .rst) && header.dstCid == Self.cid)
        let payload = Array(bytes.dropFirst(44))
        #expect(payload.count == Int(header.len), "rx used length disagrees with the header's len")
        let key = VsockConnectionKey(localPort: header.dstPort, peerPort: header.srcPort)
        guard let socket = sockets[key] else {
            if header.knownOp == .request {
                if ignoring.contains(header.dstPort) { return }
                if listening.contains(header.dstPort) {
                    let socket = VsockGuestSocket(guestPort: header.dstPort, hostPort: header.srcPort, state: .established,
                                                  bufAlloc: defaultBufAlloc)
                    socket.peerBufAlloc = header.bufAlloc
                    socket.peerFwdCnt = header.fwdCnt
                    socket.ops.append(.request)
                    sockets[key] = socket
                    send(self.header(socket, .response))
                } else {
                    send(VsockPacketHeader(srcCid: Self.cid, dstCid: 2, srcPort: header.dstPort, dstPort: header.srcPort, op: .rst))
                }
            } else {
                unmatched.append(header)
            }
            return
        }
        guard let op = header.knownOp else {
            Issue.record("unknown op \(header.op)")
            return
        }
        socket.ops.append(op)
        socket.peerBufAlloc = header.bufAlloc
        socket.peerFwdCnt = header.fwdCnt
        switch op {
        case .response:
            socket.state = .established
        case .rst:
            socket.state = .reset
        case .rw:
            socket.received += payload
            socket.unconsumed += payload.count
            if socket.unconsumed > Int(socket.bufAlloc) { socket.creditViolated = true }
            if socket.autoConsume { consume(socket, socket.unconsumed) }
        case .creditRequest:
            send(self.header(socket, .creditUpdate))
        case .shutdown:
            socket.shutdownFlags |= header.flags
            // Linux (virtio_transport_recv_connected): the peer shut both ways and nothing
            // is left to read: reset and close the socket.
            let both = VsockPacketHeader.shutdownSend | VsockPacketHeader.shutdownReceive
            if socket.shutdownFlags & both == both, socket.unconsumed == 0, !socket.sentReset {
                socket.sentReset = true
                send(self.header(socket, .rst))
            }
        case .request, .creditUpdate:
            break
        }
    }

    /// The application read `count` bytes: credit them, and tell the device once half the
    /// buffer was freed unannounced.
    func consume(_ socket: VsockGuestSocket, _ count: Int, announce: Bool = false) {
        socket.unconsumed -= count
        socket.fwdCnt &+= UInt32(count)
        if announce || socket.fwdCnt &- socket.lastSentFwdCnt >= socket.bufAlloc / 2 {
            send(header(socket, .creditUpdate))
        }
    }

    // MARK: Sockets

    /// connect() to host port `port` (REQUEST); returns the socket, connecting.
    func connect(to port: UInt32, bufAlloc: UInt32? = nil) -> VsockGuestSocket {
        let socket = VsockGuestSocket(guestPort: nextGuestPort, hostPort: port, state: .connecting,
                                      bufAlloc: bufAlloc ?? defaultBufAlloc)
        nextGuestPort += 1
        sockets[VsockConnectionKey(localPort: socket.guestPort, peerPort: port)] = socket
        send(header(socket, .request))
        return socket
    }

    /// Sends `data` as RW packets within the host's credit, `chunk` bytes at most each,
    /// cycling through `layouts`; `whileWaiting` runs when credit or tx slots run out.
    func write(_ socket: VsockGuestSocket, _ data: [UInt8], chunk: Int = 64 << 10,
               layouts: [VsockTxLayout] = [.single], whileWaiting: () -> Void = {}) -> Bool {
        var offset = 0
        var n = 0
        let deadline = ProcessClock.monotonicNanos() + 20_000_000_000
        while offset < data.count {
            guard socket.state == .established, ProcessClock.monotonicNanos() < deadline else { return false }
            let size = min(chunk, data.count - offset, socket.peerCredit)
            if size == 0 || txFree.isEmpty {
                whileWaiting()
                step(waitMs: 0)
                continue
            }
            send(header(socket, .rw, len: UInt32(size)), payload: Array(data[offset..<offset + size]),
                 layout: layouts[n % layouts.count])
            socket.txCnt &+= UInt32(size)
            offset += size
            n += 1
        }
        return true
    }

    func shutdown(_ socket: VsockGuestSocket, flags: UInt32) {
        send(header(socket, .shutdown, flags: flags))
    }
}

/// A stream the guest opened to a host listener: established, and accepted on the host.
struct GuestInitiatedStream {
    let listener: VsockHostListener
    let socket: VsockGuestSocket
    let fd: Int32
}

extension VsockTestGuest {
    /// Opens a stream from the guest to a host listener on `port`; nil if it was never
    /// established or the host never got it.
    func openToHost(port: UInt32) -> GuestInitiatedStream? {
        let listener = VsockHostListener(self, port: port)
        let socket = connect(to: port)
        guard pump(until: { socket.state == .established }) else { return nil }
        let fd = listener.accept(pumping: self)
        return fd >= 0 ? GuestInitiatedStream(listener: listener, socket: socket, fd: fd) : nil
    }

    /// What the host reads from `fd` until the stream ends, while the device runs; nil if
    /// it never ends.
    func readToEnd(_ fd: Int32) -> [UInt8]? {
        var got: [UInt8] = []
        let ended = pump {
            let r = VsockHostSocket.readAvailable(fd)
            got += r.bytes
            return r.eof
        }
        return ended ? got : nil
    }
}
