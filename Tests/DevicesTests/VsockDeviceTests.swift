import Foundation
import Glibc
import Logging
import Testing
@testable import Devices
@testable import VMM

/// virtio-vsock as Firecracker's hybrid vsock, driven by a simulated Linux guest over
/// the real transport and by real Unix-socket clients and listeners on the host.
@Suite struct VsockDeviceTests {
    typealias Key = VsockConnectionKey

    /// A host program's connection through `CONNECT <port>`, up to the `OK` line.
    struct HostConnection {
        let fd: Int32
        let hostPort: UInt32
        let socket: VsockGuestSocket
    }

    static func hostConnect(_ g: VsockTestGuest, port: UInt32, extra: [UInt8] = []) -> HostConnection? {
        g.listening.insert(port)
        guard let fd = VsockHostSocket.connect(g.path) else { return nil }
        VsockHostSocket.writeSome(fd, Array("CONNECT \(port)\n".utf8) + extra)
        var line: [UInt8] = []
        let ok = g.pump {
            // Read byte by byte: nothing past the line.
            var byte: UInt8 = 0
            while recv(fd, &byte, 1, Int32(MSG_DONTWAIT)) == 1 {
                line.append(byte)
                if byte == UInt8(ascii: "\n") { return true }
            }
            return false
        }
        guard ok, let text = String(bytes: line, encoding: .utf8), text.hasPrefix("OK "),
              let hostPort = UInt32(text.dropFirst(3).dropLast()),
              let socket = g.sockets[Key(localPort: port, peerPort: hostPort)] else {
            close(fd)
            return nil
        }
        return HostConnection(fd: fd, hostPort: hostPort, socket: socket)
    }

    /// Reads from `fd` until `count` bytes came (or EOF/timeout).
    static func hostRead(_ g: VsockTestGuest, _ fd: Int32, count: Int, seconds: Double = 5) -> [UInt8] {
        var got: [UInt8] = []
        g.pump(seconds: seconds) {
            got += VsockHostSocket.readAvailable(fd).bytes
            return got.count >= count
        }
        return got
    }

    /// Pumps until the host socket reports end of file.
    static func hostSeesEOF(_ g: VsockTestGuest, _ fd: Int32, seconds: Double = 3) -> Bool {
        g.pump(seconds: seconds) { VsockHostSocket.readAvailable(fd).eof }
    }

    @Test func deviceIdentityConfigAndSetupErrors() throws {
        let g = try VsockTestGuest()
        #expect(g.driver.read32(VirtioMmio.deviceId) == 19)
        #expect(g.device.queueMaxSizes == [256, 256, 256])
        #expect(ByteReader(g.driver.readConfig(0, width: 8)).u64(0) == VsockTestGuest.cid)
        #expect(g.driver.readConfig(4, width: 4) == [0, 0, 0, 0])
        #expect(g.device.offeredFeatures & VirtioFeature.version1 != 0)
        var st = stat()
        #expect(lstat(g.path, &st) == 0 && st.st_mode & S_IFMT == S_IFSOCK)

        let loop = try EventLoop()
        for cid: UInt64 in [0, 1, 2, UInt64(UInt32.max)] {
            #expect(throws: VsockError.invalidGuestCid(cid)) {
                try VirtioVsock(guestCid: cid, udsPath: VsockHostSocket.uniquePath(), loop: loop, logger: quietLogger())
            }
        }
        let long = "/tmp/" + String(repeating: "x", count: 120)
        #expect(throws: VsockError.pathTooLong(long, limit: 107)) {
            try VirtioVsock(guestCid: 3, udsPath: long, loop: loop, logger: quietLogger())
        }
        // A stale socket is replaced; a regular file is not touched.
        let stale = VsockHostSocket.uniquePath()
        close(VsockHostSocket.listen(stale))
        let replaced = try VirtioVsock(guestCid: 3, udsPath: stale, loop: loop, logger: quietLogger())
        #expect(VsockHostSocket.connect(stale).map { close($0); return true } == true)
        replaced.close()
        #expect(access(stale, F_OK) != 0, "close() removes the socket file")
        let file = VsockHostSocket.uniquePath()
        let fd = open(file, O_CREAT | O_WRONLY, 0o600)
        close(fd)
        defer { unlink(file) }
        #expect(throws: VsockError.pathInUse(file)) {
            try VirtioVsock(guestCid: 3, udsPath: file, loop: loop, logger: quietLogger())
        }
        #expect(access(file, F_OK) == 0)
        // A directory that does not exist: bind fails, with the path in the message.
        do {
            _ = try VirtioVsock(guestCid: 3, udsPath: "/nonexistent-dir/vs", loop: loop, logger: quietLogger())
            Issue.record("bind should have failed")
        } catch {
            #expect("\(error)".contains("bind /nonexistent-dir/vs"))
        }
    }

    @Test func hostInitiatedConnectionCarriesDataBothWays() throws {
        let g = try VsockTestGuest()
        // Data right behind the CONNECT line is stream data, not part of the handshake.
        guard let c = Self.hostConnect(g, port: 1234, extra: Array("early".utf8)) else {
            Issue.record("no OK line")
            return
        }
        defer { close(c.fd) }
        #expect(c.hostPort >= 1 << 30)
        let request = g.log.first { $0.knownOp == .request }
        #expect(request?.srcCid == 2 && request?.dstCid == 3 && request?.dstPort == 1234 && request?.srcPort == c.hostPort)
        #expect(request?.bufAlloc == 256 << 10)
        #expect(g.pump { c.socket.received == Array("early".utf8) })

        VsockHostSocket.writeSome(c.fd, Array("ping from host".utf8))
        #expect(g.pump { c.socket.received == Array("earlyping from host".utf8) })
        #expect(g.write(c.socket, Array("pong from guest".utf8), layouts: [.split]))
        #expect(Self.hostRead(g, c.fd, count: 15) == Array("pong from guest".utf8))
        #expect(g.device.connectionCount == 1)
    }

    @Test func guestInitiatedConnectionReachesTheListenerAtPathPort() throws {
        let g = try VsockTestGuest()
        let listener = VsockHostSocket.listen("\(g.path)_5000")
        defer {
            close(listener)
            unlink("\(g.path)_5000")
        }
        let s = g.connect(to: 5000)
        #expect(g.pump { s.state == .established })
        #expect(s.ops.first == .response)
        var accepted: Int32?
        #expect(g.pump { accepted = VsockHostSocket.accept(listener); return accepted != nil })
        let fd = try #require(accepted, "the device never connected to the listener")
        defer { close(fd) }
        #expect(g.write(s, Array("hello host".utf8), layouts: [.scattered]))
        #expect(Self.hostRead(g, fd, count: 10) == Array("hello host".utf8))
        VsockHostSocket.writeSome(fd, Array("hello guest".utf8))
        #expect(g.pump { s.received == Array("hello guest".utf8) })

        // Nobody listens on 5001: the guest gets an RST at once.
        let refused = g.connect(to: 5001)
        #expect(g.pump { refused.gotReset })
        #expect(g.device.connectionCount == 1)
    }

    @Test func severalMiBEachWayWithEveryLayout() throws {
        let g = try VsockTestGuest(rxLayouts: [.single(4096 + 44), .split(4096), .scattered(1000), .single(100),
                                              .split(65536), .single(70000)])
        let size = 4 << 20
        let toHost = vsockPattern(size, seed: 1)
        let toGuest = vsockPattern(size, seed: 2)
        guard let c = Self.hostConnect(g, port: 77) else {
            Issue.record("no connection")
            return
        }
        defer { close(c.fd) }
        var hostGot: [UInt8] = []
        var hostSent = 0
        func hostSide() {
            hostGot += VsockHostSocket.readAvailable(c.fd).bytes
            if hostSent < toGuest.count {
                let n = VsockHostSocket.writeSome(c.fd, toGuest[hostSent..<min(hostSent + (256 << 10), toGuest.count)])
                if n > 0 { hostSent += n }
            }
        }
        // Odd chunk sizes so that packets never line up with buffers.
        #expect(g.write(c.socket, toHost, chunk: 65_521, layouts: VsockTxLayout.allCases, whileWaiting: hostSide))
        #expect(g.pump(seconds: 20) {
            hostSide()
            return hostGot.count >= size && c.socket.received.count >= size
        })
        #expect(hostGot == toHost)
        #expect(c.socket.received == toGuest)
        #expect(!c.socket.creditViolated)
        // Every rx packet fit its buffer and carried at most 64 KiB.
        #expect(g.log.allSatisfy { $0.len <= 65536 })
        let stats = g.device.statistics
        #expect(stats.bytesToHost == UInt64(size) && stats.bytesToGuest == UInt64(size) + 0)
    }

    @Test func eventLoopOnItsOwnThreadAndAResetInTheMiddle() throws {
        // As in the VMM: host sockets are served on the loop thread while queue
        // notifications and the driver's reset come from another thread.
        let g = try VsockTestGuest()
        guard let c = Self.hostConnect(g, port: 88) else {
            Issue.record("no connection")
            return
        }
        defer { close(c.fd) }
        try g.loop.start()
        g.loopThreaded = true
        let size = 2 << 20
        let toHost = vsockPattern(size, seed: 21)
        let toGuest = vsockPattern(size, seed: 22)
        var hostGot: [UInt8] = []
        var hostSent = 0
        func hostSide() {
            hostGot += VsockHostSocket.readAvailable(c.fd).bytes
            if hostSent < toGuest.count {
                hostSent += max(0, VsockHostSocket.writeSome(c.fd, toGuest[hostSent..<min(hostSent + (64 << 10), toGuest.count)]))
            }
        }
        #expect(g.write(c.socket, toHost, chunk: 30_000, layouts: [.single, .split], whileWaiting: hostSide))
        #expect(g.pump(seconds: 10) {
            hostSide()
            return hostGot.count >= size && c.socket.received.count >= size
        })
        #expect(hostGot == toHost && c.socket.received == toGuest)
        // Traffic in flight on the loop thread while this thread resets the device.
        VsockHostSocket.writeSome(c.fd, vsockPattern(100_000, seed: 23))
        g.driver.reset()
        #expect(g.device.connectionCount == 0)
        #expect(g.pump { VsockHostSocket.readAvailable(c.fd).eof })
        g.loop.stop()
    }

    @Test func aRingBrokenWhileServingSocketsAsksForAReset() throws {
        let g = try VsockTestGuest()
        guard let c = Self.hostConnect(g, port: 90) else {
            Issue.record("no connection")
            return
        }
        defer { close(c.fd) }
        // The transport watches the backend's failure eventfd on the same loop.
        try g.driver.transport.attach(to: g.loop)
        g.holdRx = true
        g.settle(rounds: 2)
        // The driver's rx avail index runs away; host data makes the device look at the ring.
        g.driver.setAvailIndex(g.driver.queue(0).availIdx &+ 1000, queue: 0)
        VsockHostSocket.writeSome(c.fd, Array("data".utf8))
        #expect(g.pump { g.driver.status & VirtioStatus.deviceNeedsReset != 0 })
        // The driver resets: connections go, and the device works again.
        g.driver.reset()
        #expect(g.pump { VsockHostSocket.readAvailable(c.fd).eof })
        try g.driver.initialize()
        #expect(g.driver.status & VirtioStatus.deviceNeedsReset == 0)
    }

    @Test func creditExhaustionStopsTheHostAndAnUpdateResumesIt() throws {
        let g = try VsockTestGuest()
        let listener = VsockHostListener(g, port: 6000)
        let s = g.connect(to: 6000, bufAlloc: 5000)  // not a multiple of the 4 KiB rx buffers
        s.autoConsume = false
        #expect(g.pump { s.state == .established })
        let fd = listener.accept(pumping: g)
        #expect(fd >= 0)
        defer { close(fd) }
        let data = vsockPattern(100_000, seed: 3)
        #expect(VsockHostSocket.writeSome(fd, data) == data.count)
        #expect(g.pump { s.received.count == 5000 })
        g.settle(rounds: 30)
        #expect(s.received.count == 5000, "the device sent past the guest's credit")
        #expect(!s.creditViolated)
        #expect(g.loop.runOnce(timeoutMs: 0) == 0, "the stalled host socket is still watched (a busy loop)")

        // A credit request is answered with the device's own credit.
        let before = s.ops.count
        g.send(g.header(s, .creditRequest))
        #expect(g.pump { s.ops.count > before && s.ops.last == .creditUpdate })
        #expect(s.received.count == 5000)

        // The application reads; the guest announces it; the host data flows again.
        var consumed = 0
        #expect(g.pump(seconds: 10) {
            if s.unconsumed > 0 {
                consumed += s.unconsumed
                g.consume(s, s.unconsumed, announce: true)
            }
            return s.received.count == data.count
        })
        #expect(s.received == data)
        #expect(!s.creditViolated)
        // No packet was ever bigger than the guest's whole buffer.
        #expect(g.log.filter { $0.knownOp == .rw }.allSatisfy { $0.len <= 5000 })
    }

    @Test func noRxBuffersPausesTheHostUntilTheGuestKicks() throws {
        // Few and odd rx buffers: some hold a header and nothing more.
        let g = try VsockTestGuest(rxLayouts: [.single(44), .split(100), .scattered(60), .single(300)], rxBuffers: 4)
        guard let c = Self.hostConnect(g, port: 60) else {
            Issue.record("no connection")
            return
        }
        defer { close(c.fd) }
        g.holdRx = true
        let data = vsockPattern(50_000, seed: 6)
        #expect(VsockHostSocket.writeSome(c.fd, data) == data.count)
        g.settle()
        #expect(g.loop.runOnce(timeoutMs: 0) == 0, "the device keeps reading with nowhere to put the data")
        // An RST owed to the guest waits for a buffer too.
        g.send(VsockPacketHeader(srcCid: 3, dstCid: 2, srcPort: 1, dstPort: 2, op: .rw))
        g.settle(rounds: 3)
        #expect(g.unmatched.isEmpty)
        g.holdRx = false
        #expect(g.pump { c.socket.received.count == data.count && g.unmatched.count == 1 })
        #expect(c.socket.received == data)
        // Header-only buffers carried credit updates, never empty data packets.
        #expect(g.log.allSatisfy { $0.knownOp != .rw || $0.len > 0 })
    }

    @Test func limitsOnConnectionsAndClients() throws {
        var limits = VsockLimits()
        limits.maxConnections = 3
        limits.maxPendingClients = 2
        let g = try VsockTestGuest(limits: limits)
        var open: [Int32] = []
        defer { for fd in open { close(fd) } }
        for port: UInt32 in 1...3 {
            guard let c = Self.hostConnect(g, port: port) else {
                Issue.record("connection \(port) failed")
                return
            }
            open.append(c.fd)
        }
        // A fourth host client is closed after its line; a fourth guest REQUEST is refused.
        let fourth = VsockHostSocket.connect(g.path)!
        open.append(fourth)
        VsockHostSocket.writeSome(fourth, Array("CONNECT 4\n".utf8))
        #expect(Self.hostSeesEOF(g, fourth))
        let refused = g.connect(to: 1234)
        #expect(g.pump { refused.gotReset })
        // Only two clients may be mid-handshake at once.
        let waiting = (0..<3).map { _ in VsockHostSocket.connect(g.path)! }
        open += waiting
        #expect(g.pump { VsockHostSocket.readAvailable(waiting[2]).eof })
        g.settle()
        #expect(g.device.muxer.pendingClientCount == 2)
        #expect(g.device.connectionCount == 3)
    }

    @Test func guestIgnoringCreditGetsReset() throws {
        var limits = VsockLimits()
        limits.bufferSize = 64 << 10
        let g = try VsockTestGuest(limits: limits)
        let stream = try #require(g.openToHost(port: 6100), "the device never connected to the listener")
        let (s, fd) = (stream.socket, stream.fd)
        defer { close(fd) }
        // The host never reads: once its socket buffer is full, the device holds up to
        // 64 KiB; a guest that sends on regardless is reset.
        let chunk = vsockPattern(60_000, seed: 4)
        for _ in 0..<100 where !s.gotReset {
            g.send(g.header(s, .rw, len: UInt32(chunk.count)), payload: chunk)
            g.step()
        }
        #expect(g.pump { s.gotReset })
        #expect(Self.hostSeesEOF(g, fd, seconds: 5))
        #expect(g.device.connectionCount == 0)
    }

    @Test func hundredConcurrentConnections() throws {
        let g = try VsockTestGuest(rxBuffers: 256)
        let listener = VsockHostSocket.listen("\(g.path)_7000")
        defer {
            close(listener)
            unlink("\(g.path)_7000")
        }
        // 50 from the host, 50 from the guest, all open at once.
        var hostSide: [(fd: Int32, socket: VsockGuestSocket)] = []
        for i in 0..<50 {
            guard let c = Self.hostConnect(g, port: UInt32(100 + i)) else {
                Issue.record("host connection \(i) failed")
                return
            }
            hostSide.append((c.fd, c.socket))
        }
        let guestSockets = (0..<50).map { _ in g.connect(to: 7000) }
        var accepted: [Int32] = []
        #expect(g.pump {
            while let fd = VsockHostSocket.accept(listener) { accepted.append(fd) }
            return accepted.count == 50 && guestSockets.allSatisfy { $0.state == .established }
        })
        defer { for fd in accepted + hostSide.map(\.fd) { close(fd) } }
        #expect(g.device.connectionCount == 100)
        // Which accepted fd is which guest socket: each guest socket names itself.
        for (i, s) in guestSockets.enumerated() { #expect(g.write(s, Array("g\(i);".utf8))) }
        var byName: [String: Int32] = [:]
        var partial: [Int32: [UInt8]] = [:]
        #expect(g.pump {
            for fd in accepted {
                partial[fd, default: []] += VsockHostSocket.readAvailable(fd).bytes
                if let bytes = partial[fd], bytes.last == UInt8(ascii: ";") {
                    byName[String(decoding: bytes, as: UTF8.self)] = fd
                }
            }
            return byName.count == 50
        })
        let pairs: [(fd: Int32, socket: VsockGuestSocket)] = hostSide
            + guestSockets.enumerated().compactMap { i, s in byName["g\(i);"].map { ($0, s) } }
        #expect(pairs.count == 100)
        for (i, pair) in pairs.enumerated() {
            VsockHostSocket.writeSome(pair.fd, vsockPattern(3000, seed: 100 + i))
            #expect(g.write(pair.socket, vsockPattern(3000, seed: 500 + i)))
        }
        var got: [Int32: [UInt8]] = [:]
        #expect(g.pump(seconds: 10) {
            for pair in pairs { got[pair.fd, default: []] += VsockHostSocket.readAvailable(pair.fd).bytes }
            return pairs.allSatisfy { got[$0.fd]?.count ?? 0 >= 3000 && $0.socket.received.count >= 3000 + ($0.socket.guestPort < 40000 ? 0 : 0) }
        })
        for (i, pair) in pairs.enumerated() {
            #expect(got[pair.fd] == vsockPattern(3000, seed: 500 + i))
            let expected = vsockPattern(3000, seed: 100 + i)
            #expect(pair.socket.received.suffix(3000) == expected[...])
        }
        // Distinct ephemeral ports.
        #expect(Set(hostSide.map(\.socket.hostPort)).count == 50)
    }

    @Test func misbehavingHostClientsHurtNoOne() throws {
        var limits = VsockLimits()
        limits.handshakeTimeoutNs = 200_000_000
        let g = try VsockTestGuest(limits: limits)
        guard let good = Self.hostConnect(g, port: 9) else {
            Issue.record("no good connection")
            return
        }
        defer { close(good.fd) }
        let bad: [[UInt8]] = [
            [],  // closes before writing anything
            Array("CONN".utf8),  // closes in the middle of the line
            Array("HELLO WORLD\n".utf8),  // garbage
            Array(String(repeating: "CONNECT ", count: 1).utf8) + [UInt8](repeating: UInt8(ascii: "1"), count: 40),  // overlong
            Array("CONNECT 99999999999\n".utf8),  // port out of range
            Array("CONNECT abc\n".utf8),  // not a port
            Array("CONNECT \n".utf8),
        ]
        var fds: [Int32] = []
        for (i, bytes) in bad.enumerated() {
            guard let fd = VsockHostSocket.connect(g.path) else {
                Issue.record("connect failed")
                continue
            }
            VsockHostSocket.writeSome(fd, bytes)
            if i < 2 { shutdown(fd, Int32(SHUT_WR)) }
            fds.append(fd)
        }
        // One that says nothing at all and one that says half a line stay until the handshake timeout.
        let silent = VsockHostSocket.connect(g.path)!
        let slow = VsockHostSocket.connect(g.path)!
        VsockHostSocket.writeSome(slow, Array("CONNECT 9".utf8))
        defer { for fd in fds + [silent, slow] { close(fd) } }
        #expect(g.pump { fds.allSatisfy { VsockHostSocket.readAvailable($0).eof } })
        #expect(g.pump(seconds: 3) { VsockHostSocket.readAvailable(silent).eof && VsockHostSocket.readAvailable(slow).eof })
        #expect(g.device.statistics.rejectedClients == UInt64(bad.count + 2))
        #expect(g.device.muxer.pendingClientCount == 0)
        // No REQUEST went to the guest for any of them.
        #expect(g.log.filter { $0.knownOp == .request }.count == 1)
        // The good connection never noticed.
        VsockHostSocket.writeSome(good.fd, Array("still here".utf8))
        #expect(g.pump { good.socket.received == Array("still here".utf8) })
        #expect(g.write(good.socket, Array("and here".utf8)))
        #expect(Self.hostRead(g, good.fd, count: 8) == Array("and here".utf8))
    }

    @Test func misbehavingGuestPacketsHurtNoOne() throws {
        let g = try VsockTestGuest()
        guard let good = Self.hostConnect(g, port: 10) else {
            Issue.record("no good connection")
            return
        }
        defer { close(good.fd) }
        let victimListener = VsockHostSocket.listen("\(g.path)_8000")
        defer {
            close(victimListener)
            unlink("\(g.path)_8000")
        }
        func hdr(_ op: UInt16, src: UInt32 = 999, dst: UInt32 = 4242, srcCid: UInt64 = 3, dstCid: UInt64 = 2,
                 type: UInt16 = 1, len: UInt32 = 0) -> VsockPacketHeader {
            VsockPacketHeader(srcCid: srcCid, dstCid: dstCid, srcPort: src, dstPort: dst, len: len, type: type, op: op)
        }
        // Unknown connections: RW, SHUTDOWN, CREDIT_*, RESPONSE each get an RST; an RST gets nothing.
        for op: VsockPacketHeader.Op in [.rw, .shutdown, .creditUpdate, .creditRequest, .response] {
            g.send(hdr(op.rawValue, len: op == .rw ? 3 : 0), payload: op == .rw ? [1, 2, 3] : [])
        }
        g.send(hdr(VsockPacketHeader.Op.rst.rawValue))
        #expect(g.pump { g.unmatched.count >= 5 })
        g.settle()
        #expect(g.unmatched.count == 5 && g.unmatched.allSatisfy { $0.knownOp == .rst && $0.dstPort == 999 && $0.srcPort == 4242 })
        // An unknown op, a non-stream type: RST too.
        g.send(hdr(99, src: 1001))
        g.send(hdr(1, src: 1002, type: 2))
        #expect(g.pump { g.unmatched.count == 7 })
        // Another CID: answered with an RST from that CID (the guest fails fast); a forged
        // source CID is dropped.
        g.send(hdr(1, src: 1003, dstCid: 7))
        g.send(hdr(1, src: 1004, srcCid: 9))
        #expect(g.pump { g.unmatched.count == 8 })
        g.settle()
        #expect(g.unmatched.count == 8)
        #expect(g.unmatched.last?.dstPort == 1003 && g.unmatched.last?.srcCid == 7)
        #expect(g.log.allSatisfy { $0.dstPort != 1004 })
        // Too short for a header.
        g.sendRaw([1, 2, 3])
        // A live connection whose guest lies about len: it is reset, and only it.
        let victim = g.connect(to: 8000)
        #expect(g.pump { victim.state == .established })
        var victimFd: Int32 = -1
        #expect(g.pump { victimFd = VsockHostSocket.accept(victimListener) ?? -1; return victimFd >= 0 })
        defer { close(victimFd) }
        g.send(g.header(victim, .rw, len: 5000), payload: [UInt8](repeating: 7, count: 100), layout: .split)
        #expect(g.pump { victim.gotReset })
        #expect(Self.hostSeesEOF(g, victimFd))
        // A len beyond the 64 KiB packet limit, on another connection.
        let victim2 = g.connect(to: 8000)
        #expect(g.pump { victim2.state == .established })
        g.send(g.header(victim2, .rw, len: 70000), payload: [UInt8](repeating: 1, count: 65536 + 44))
        #expect(g.pump { victim2.gotReset })
        // A second REQUEST for a live connection resets it.
        let victim3 = g.connect(to: 8000)
        #expect(g.pump { victim3.state == .established })
        g.send(g.header(victim3, .request))
        #expect(g.pump { victim3.gotReset })
        #expect(g.device.statistics.malformedPackets >= 3)
        // The good connection carries on, and the device never asked for a reset.
        VsockHostSocket.writeSome(good.fd, Array("fine".utf8))
        #expect(g.pump { good.socket.received == Array("fine".utf8) })
        #expect(g.write(good.socket, Array("fine too".utf8)))
        #expect(Self.hostRead(g, good.fd, count: 8) == Array("fine too".utf8))
        #expect(g.driver.status & VirtioStatus.deviceNeedsReset == 0)
        #expect(g.device.connectionCount == 1)
    }

    @Test func guestRefusingOrIgnoringAHostConnectClosesTheClient() throws {
        var limits = VsockLimits()
        limits.connectTimeoutNs = 200_000_000
        let g = try VsockTestGuest(limits: limits)
        // Refused: nobody listens on guest port 555; the guest answers RST.
        let refused = VsockHostSocket.connect(g.path)!
        defer { close(refused) }
        VsockHostSocket.writeSome(refused, Array("CONNECT 555\n".utf8))
        let got = g.readToEnd(refused)
        #expect(got == [], "no OK line for a refused connection")
        // Ignored: the guest never answers; the client is closed after the timeout and the
        // guest gets an RST, so that a late RESPONSE finds nothing.
        g.ignoring.insert(556)
        let ignored = VsockHostSocket.connect(g.path)!
        defer { close(ignored) }
        VsockHostSocket.writeSome(ignored, Array("CONNECT 556\n".utf8))
        #expect(g.pump { g.log.contains { $0.knownOp == .request && $0.dstPort == 556 } })
        #expect(g.pump(seconds: 3) { VsockHostSocket.readAvailable(ignored).eof })
        let request = g.log.first { $0.knownOp == .request && $0.dstPort == 556 }!
        #expect(g.pump { g.unmatched.contains { $0.knownOp == .rst && $0.dstPort == 556 && $0.srcPort == request.srcPort } })
        #expect(g.device.connectionCount == 0)
        // A late RESPONSE gets an RST.
        let before = g.unmatched.count
        g.send(VsockPacketHeader(srcCid: 3, dstCid: 2, srcPort: 556, dstPort: request.srcPort, op: .response))
        #expect(g.pump { g.unmatched.count == before + 1 })
        // A client that leaves before the guest answers: the guest gets an RST.
        g.ignoring.insert(557)
        let leaver = VsockHostSocket.connect(g.path)!
        VsockHostSocket.writeSome(leaver, Array("CONNECT 557\n".utf8))
        #expect(g.pump { g.log.contains { $0.knownOp == .request && $0.dstPort == 557 } })
        close(leaver)
        #expect(g.pump { g.unmatched.contains { $0.knownOp == .rst && $0.dstPort == 557 } })
        #expect(g.device.connectionCount == 0)
    }

    /// A REQUEST that waits for an rx buffer does not eat the guest's time to answer: the
    /// connect timeout runs from its delivery. (A slow guest that had not yet reposted its
    /// buffers once saw a host client closed before the REQUEST ever reached it.)
    @Test func aHostConnectWaitingForRxBuffersStillGetsItsAnswer() throws {
        var limits = VsockLimits()
        limits.connectTimeoutNs = 200_000_000
        let g = try VsockTestGuest(limits: limits, rxBuffers: 1)
        g.listening.insert(20)
        g.holdRx = true
        // The one rx buffer goes to a REQUEST the guest will ignore...
        g.ignoring.insert(556)
        let first = VsockHostSocket.connect(g.path)!
        defer { close(first) }
        VsockHostSocket.writeSome(first, Array("CONNECT 556\n".utf8))
        g.settle()
        // ...so this one waits, for longer than the connect timeout, until the guest reads.
        let waiting = VsockHostSocket.connect(g.path)!
        defer { close(waiting) }
        VsockHostSocket.writeSome(waiting, Array("CONNECT 20\n".utf8))
        // And a client that gives up while its REQUEST waits leaves nothing behind.
        let leaver = VsockHostSocket.connect(g.path)!
        VsockHostSocket.writeSome(leaver, Array("CONNECT 21\n".utf8))
        g.settle()
        close(leaver)
        #expect(!g.pump(seconds: 0.5) { VsockHostSocket.readAvailable(waiting).eof })
        g.holdRx = false
        var reply: [UInt8] = []
        #expect(g.pump {
            let got = VsockHostSocket.readAvailable(waiting)
            reply += got.bytes
            return got.eof || reply.contains(UInt8(ascii: "\n"))
        })
        #expect(String(decoding: reply, as: UTF8.self).hasPrefix("OK "), "reply: \(String(decoding: reply, as: UTF8.self))")
        #expect(g.pump { g.device.connectionCount == 1 }, "\(g.device.connectionCount) connections; only port 20's should be left")
    }

    @Test func halfCloseFromTheHostThenTheGuest() throws {
        let g = try VsockTestGuest()
        guard let c = Self.hostConnect(g, port: 20) else {
            Issue.record("no connection")
            return
        }
        defer { close(c.fd) }
        VsockHostSocket.writeSome(c.fd, Array("last words".utf8))
        shutdown(c.fd, Int32(SHUT_WR))
        #expect(g.pump { c.socket.shutdownFlags & VsockPacketHeader.shutdownSend != 0 })
        #expect(c.socket.received == Array("last words".utf8), "SHUTDOWN comes after the data")
        #expect(!c.socket.gotReset)
        // The other direction still works.
        let reply = vsockPattern(300_000, seed: 9)
        var got: [UInt8] = []
        #expect(g.write(c.socket, reply, whileWaiting: { got += VsockHostSocket.readAvailable(c.fd).bytes }))
        #expect(g.pump { got += VsockHostSocket.readAvailable(c.fd).bytes; return got.count == reply.count })
        #expect(got == reply)
        // The guest shuts its side: the host sees EOF, the connection is torn down with an RST.
        g.shutdown(c.socket, flags: VsockPacketHeader.shutdownSend)
        #expect(Self.hostSeesEOF(g, c.fd))
        #expect(g.pump { c.socket.gotReset })
        #expect(g.device.connectionCount == 0)
    }

    @Test func halfCloseFromTheGuestThenTheHost() throws {
        let g = try VsockTestGuest()
        let stream = try #require(g.openToHost(port: 21), "the device never connected to the listener")
        let (s, fd) = (stream.socket, stream.fd)
        defer { close(fd) }
        #expect(g.write(s, Array("request".utf8)))
        g.shutdown(s, flags: VsockPacketHeader.shutdownSend)
        let got = g.readToEnd(fd)
        #expect(got == Array("request".utf8))
        // The host answers after the guest's half-close, then closes.
        let answer = vsockPattern(200_000, seed: 11)
        var sent = 0
        #expect(g.pump {
            if sent < answer.count { sent += max(0, VsockHostSocket.writeSome(fd, answer[sent...])) }
            return s.received.count == answer.count
        })
        #expect(s.received == answer)
        #expect(!s.gotReset)
        shutdown(fd, Int32(SHUT_WR))
        #expect(g.pump { s.shutdownFlags & VsockPacketHeader.shutdownSend != 0 && s.gotReset })
        #expect(g.device.connectionCount == 0)
    }

    @Test func guestCloseAndHostCloseAndHostReset() throws {
        let g = try VsockTestGuest()
        // Guest close(): SHUTDOWN RCV|SEND -> the device flushes, closes, answers RST.
        let a = try #require(Self.hostConnect(g, port: 30), "no OK line for port 30")
        defer { close(a.fd) }
        #expect(g.write(a.socket, Array("bye".utf8)))
        g.shutdown(a.socket, flags: VsockPacketHeader.shutdownSend | VsockPacketHeader.shutdownReceive)
        #expect(Self.hostRead(g, a.fd, count: 3) == Array("bye".utf8))
        #expect(Self.hostSeesEOF(g, a.fd))
        #expect(g.pump { a.socket.gotReset })
        // Host close(): the guest gets its data, then SHUTDOWN(SEND).
        let b = try #require(Self.hostConnect(g, port: 31), "no OK line for port 31")
        VsockHostSocket.writeSome(b.fd, Array("closing".utf8))
        close(b.fd)
        #expect(g.pump { b.socket.shutdownFlags & VsockPacketHeader.shutdownSend != 0 })
        #expect(b.socket.received == Array("closing".utf8))
        // Guest data for a host socket that is gone: RST.
        g.send(g.header(b.socket, .rw, len: 4), payload: [1, 2, 3, 4])
        #expect(g.pump { b.socket.gotReset })
        // Guest RST: the host socket is closed at once.
        let c = try #require(Self.hostConnect(g, port: 32), "no OK line for port 32")
        defer { close(c.fd) }
        g.send(g.header(c.socket, .rst))
        #expect(Self.hostSeesEOF(g, c.fd))
        #expect(g.device.connectionCount == 0)
    }

    @Test func driverResetDropsConnectionsAndTeardownLeavesNoDescriptors() throws {
        let before = VsockHostSocket.openLinks().count
        var deviceLinks: Set<String> = []
        var path = ""
        do {
            let g = try VsockTestGuest()
            path = g.path
            let listener = VsockHostSocket.listen("\(g.path)_40")
            defer {
                close(listener)
                unlink("\(g.path)_40")
            }
            var clients: [Int32] = []
            for port: UInt32 in 50..<55 {
                if let c = Self.hostConnect(g, port: port) { clients.append(c.fd) }
            }
            let s = g.connect(to: 40)
            #expect(g.pump { s.state == .established })
            var accepted: Int32 = -1
            #expect(g.pump { accepted = VsockHostSocket.accept(listener) ?? -1; return accepted >= 0 })
            let pending = VsockHostSocket.connect(g.path)!  // still handshaking
            g.step()
            #expect(g.device.connectionCount == 6)
            let descriptors = g.device.muxer.openDescriptors
            #expect(descriptors.count == 2 + 6 + 1)  // listener, timer, connections, the pending client
            // Sockets have unique inodes; the timerfd's link is the same for every timerfd.
            deviceLinks = VsockHostSocket.links(descriptors).filter { $0.hasPrefix("socket:") }
            #expect(deviceLinks.count == 1 + 6 + 1)

            // The driver resets the device: every connection's socket is closed, no RST sent.
            let logged = g.log.count
            g.driver.reset()
            #expect(g.device.connectionCount == 0)
            #expect(g.pump { (clients + [accepted]).allSatisfy { VsockHostSocket.readAvailable($0).eof } })
            #expect(g.log.count == logged)
            // The device can be brought up again and used.
            try g.driver.initialize()
            for fd in clients + [accepted, pending] { close(fd) }
        }
        // The device is gone: its listener, timer and sockets are closed, its file removed.
        let after = VsockHostSocket.openLinks()
        #expect(deviceLinks.isDisjoint(with: after), "still open: \(deviceLinks.intersection(after))")
        #expect(access(path, F_OK) != 0)
        // Informational: other suites may run in parallel and open descriptors of their own.
        print("vsock teardown: \(before) descriptors before, \(after.count) after")
    }
}
