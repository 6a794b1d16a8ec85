import Glibc
import HybridVsock
import Logging
import Synchronization
import VMM

/// Limits and timing of the hybrid vsock backend.
public struct VsockLimits: Sendable {
    /// Live connections, both directions together.
    public var maxConnections = 1024
    /// Host clients that connected but have not finished their CONNECT line.
    public var maxPendingClients = 128
    /// Standalone packets (RSTs) waiting for a guest rx buffer; more are dropped.
    public var maxControlPackets = 2048
    /// Our receive buffer per connection (the buf_alloc we advertise).
    public var bufferSize: UInt32 = 256 << 10
    /// Largest payload of one packet either way.
    public var maxPacketPayload = 64 << 10
    /// How long the guest has to answer a host-initiated REQUEST, from its delivery.
    public var connectTimeoutNs: UInt64 = 2_000_000_000
    /// How long a host client has to send its CONNECT line.
    public var handshakeTimeoutNs: UInt64 = 5_000_000_000

    public init() {}
}

/// Counters for metrics and tests.
public struct VsockStatistics: Sendable, Equatable {
    public var connectionsOpened: UInt64 = 0
    public var resetsSent: UInt64 = 0
    public var malformedPackets: UInt64 = 0
    public var droppedPackets: UInt64 = 0
    public var bytesToHost: UInt64 = 0
    public var bytesToGuest: UInt64 = 0
    public var rejectedClients: UInt64 = 0
}

/// The host side of Firecracker's hybrid vsock: guest streams become Unix-socket
/// streams. Host programs connect to `udsPath` and ask `CONNECT <port>`; guest
/// connections to host port P become connections to `<udsPath>_P`. All state lives under
/// one lock, taken both by the queue handlers (under the transport's lock) and by the
/// socket handlers of the event loop (lock order: transport, then this one).
final class VsockMuxer: @unchecked Sendable {  // every var behind `lock` (Mutex), taken by each entry point
    private final class PendingClient: @unchecked Sendable {  // `line` is read and written only under the muxer's `lock`
        let fd: Int32
        let deadline: UInt64
        var line: [UInt8] = []
        init(fd: Int32, deadline: UInt64) {
            self.fd = fd
            self.deadline = deadline
        }
    }

    static let hostCid = VsockPacketHeader.hostCid
    static let ephemeralBase: UInt32 = 1 << 30

    let guestCid: UInt64
    let udsPath: String
    let loop: EventLoop
    /// Most lines here follow from what the guest or a host client did, at their pace:
    /// rate limited.
    let logger: RateLimitedLogger
    private let lock = Mutex(())

    // Everything below: only under `lock`.
    private var limits: VsockLimits
    private var listenerFd: Int32 = -1
    /// accept() ran out of descriptors: the listener is not watched until the next tick
    /// (epoll would report the queued connection forever).
    private var listenerPaused = false
    private let timer: TimerFd
    private var context: VirtioDeviceContext?
    private var broken = false
    private var brokenBy: Error?
    private var shutDown = false
    private var connections: [VsockConnectionKey: VsockConnection] = [:]
    private var localPortUse: [UInt32: Int] = [:]
    private var nextEphemeral = VsockMuxer.ephemeralBase
    private var pendingClients: [Int32: PendingClient] = [:]
    private var control = VsockDeque<VsockPacketHeader>()
    private var rxWork = VsockDeque<VsockConnection>()
    private var heldRxChain: DescriptorChain?
    private var rxUsed = false
    private var statistics = VsockStatistics()

    init(guestCid: UInt64, udsPath: String, loop: EventLoop, logger: Logger, limits: VsockLimits) throws {
        self.guestCid = guestCid
        self.udsPath = udsPath
        self.loop = loop
        self.logger = RateLimitedLogger(logger)
        self.limits = limits
        timer = try TimerFd()
        listenerFd = try VsockUnixSocket.listen(path: udsPath, backlog: 128)
        do {
            try loop.add(fd: listenerFd, events: EventLoop.readable) { [weak self] _ in self?.listenerReady() }
            try loop.add(fd: timer.fd, events: EventLoop.readable) { [weak self] _ in self?.timerFired() }
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        try lock.withLock { _ in try body() }
    }

    // MARK: Device entry points

    func activate(_ context: VirtioDeviceContext) {
        locked {
            self.context = context
        }
    }

    /// Drops every connection (closing its socket, telling the guest nothing: its driver
    /// is gone) and every reference to guest memory. Pending host clients stay.
    func reset() {
        locked {
            for connection in Array(connections.values) { destroy(connection, reset: false) }
            control.removeAll()
            rxWork.removeAll()
            heldRxChain = nil
            rxUsed = false
            context = nil
            updateTimer()
        }
    }

    /// Closes everything, the listening socket included, and removes its file.
    func close() {
        locked {
            guard !shutDown else { return }
            shutDown = true
            for connection in Array(connections.values) { destroy(connection, reset: false) }
            for client in Array(pendingClients.values) { dropClient(client) }
            control.removeAll()
            rxWork.removeAll()
            heldRxChain = nil
            context = nil
            if listenerFd >= 0 {
                // Only a path we bound is ours to remove (init may have failed before).
                loop.remove(fd: listenerFd)
                Glibc.close(listenerFd)
                listenerFd = -1
                unlink(udsPath)
            }
            loop.remove(fd: timer.fd)
            timer.close()
        }
    }

    /// A queue notification (event loop thread, under the transport lock).
    func process(queue index: Int) throws {
        try locked {
            guard let context, !shutDown else { return }
            switch index {
            case 1:
                let tx = context.queues[1]
                var used = false
                while let chain = try tx.nextChain(context.memory, badChain: { error in
                    statistics.malformedPackets += 1
                    used = true
                    logger.warning("virtio-vsock: bad tx chain: \(error)")
                }) {
                    handleGuestPacket(chain, context.memory)
                    try tx.addUsed(context.memory, head: chain.head, length: 0)
                    used = true
                }
                if used { context.interrupt.signalUsed(tx, context.memory) }
                try fillRx()
            case 0:
                try fillRx()
            default:
                break  // the event queue: its buffers wait for events we never send
            }
        }
    }

    var stats: VsockStatistics { locked { statistics } }
    var connectionCount: Int { locked { connections.count } }
    var pendingClientCount: Int { locked { pendingClients.count } }
    /// Every descriptor the backend holds open (tests check that teardown closes them).
    var openDescriptors: [Int32] {
        locked {
            (shutDown ? [] : [listenerFd, timer.fd]) + connections.values.map(\.fd) + Array(pendingClients.keys)
        }
    }


    // MARK: Guest packets (tx queue)

    private func handleGuestPacket(_ chain: DescriptorChain, _ memory: GuestMemory) {
        var reader = chain.reader(memory)
        guard let header = VsockPacketHeader(reading: &reader) else {
            statistics.malformedPackets += 1
            return
        }
        guard header.srcCid == guestCid else {
            statistics.droppedPackets += 1
            logger.log(level: .debug, "virtio-vsock: dropping a packet from CID \(header.srcCid)")
            return
        }
        let op = header.knownOp
        guard header.dstCid == Self.hostCid else {
            statistics.droppedPackets += 1
            if op != .rst { replyReset(to: header) }
            return
        }
        let key = VsockConnectionKey(localPort: header.dstPort, peerPort: header.srcPort)
        let existing = connections[key]
        guard header.type == VsockPacketHeader.typeStream, let op else {
            statistics.malformedPackets += 1
            if op == .rst { if let existing { destroy(existing, reset: false) } }
            else if let existing { destroy(existing, reset: true) }
            else { replyReset(to: header) }
            return
        }
        guard let connection = existing else {
            switch op {
            case .request: guestConnect(header)
            case .rst: break
            default: replyReset(to: header)
            }
            return
        }
        connection.updatePeerCredit(bufAlloc: header.bufAlloc, fwdCnt: header.fwdCnt)
        if connection.state == .connecting {
            switch op {
            case .response where connection.requestSent: established(connection)
            case .rst: destroy(connection, reset: false)
            case .creditUpdate: break
            case .creditRequest: connection.needsCreditUpdate = true
            default: destroy(connection, reset: true)
            }
        } else {
            switch op {
            case .request, .response:
                destroy(connection, reset: true)
            case .rst:
                destroy(connection, reset: false)
            case .shutdown:
                if header.flags & VsockPacketHeader.shutdownSend != 0 { connection.peerShutSend = true }
                if header.flags & VsockPacketHeader.shutdownReceive != 0 { connection.peerShutRecv = true }
            case .rw:
                guard !connection.peerShutSend else {
                    destroy(connection, reset: true)
                    break
                }
                let length = Int(header.len)
                guard length <= limits.maxPacketPayload, length <= reader.remaining else {
                    statistics.malformedPackets += 1
                    logger.warning("virtio-vsock \(connection.key): packet claims \(length) bytes, its chain holds \(reader.remaining)")
                    destroy(connection, reset: true)
                    break
                }
                deliver(reader.take(length), length: length, to: connection)
            case .creditUpdate:
                break
            case .creditRequest:
                connection.needsCreditUpdate = true
            }
        }
        if !connection.closed { refresh(connection) }
    }

    /// A guest REQUEST to host port P: connect to `<udsPath>_P`.
    private func guestConnect(_ header: VsockPacketHeader) {
        guard connections.count < limits.maxConnections,
              let fd = VsockUnixSocket.connect(path: "\(udsPath)_\(header.dstPort)") else {
            replyReset(to: header)
            return
        }
        let key = VsockConnectionKey(localPort: header.dstPort, peerPort: header.srcPort)
        let connection = VsockConnection(key: key, fd: fd, hostInitiated: false, state: .established,
                                         bufAlloc: limits.bufferSize)
        connection.updatePeerCredit(bufAlloc: header.bufAlloc, fwdCnt: header.fwdCnt)
        connection.needsResponse = true
        guard register(connection) else {
            Glibc.close(fd)
            replyReset(to: header)
            return
        }
        insert(connection)
        refresh(connection)
    }

    /// The guest accepted a host-initiated connection: tell the client, start the stream.
    private func established(_ connection: VsockConnection) {
        connection.state = .established
        let line = HybridVsockLine.ok(port: connection.key.localPort)
        let result = line.withUnsafeBytes { VsockUnixSocket.send(connection.fd, [$0]) }
        guard result == .transferred(line.count) else {
            destroy(connection, reset: true)
            return
        }
        updateTimer()
    }

    /// Data from the guest for the host socket: written at once when nothing is queued
    /// before it, the rest kept (the guest may not send more than our buffer holds).
    private func deliver(_ pieces: [UnsafeMutableRawBufferPointer], length: Int, to connection: VsockConnection) {
        guard length > 0 else { return }
        guard connection.pending.count + length <= Int(connection.bufAlloc) else {
            logger.warning("virtio-vsock \(connection.key): the guest overran its credit")
            destroy(connection, reset: true)
            return
        }
        var sent = 0
        if connection.pending.isEmpty {
            switch VsockUnixSocket.send(connection.fd, pieces.map { UnsafeRawBufferPointer($0) }) {
            case .transferred(let n): sent = n
            case .wouldBlock: sent = 0
            case .endOfFile, .failed:
                destroy(connection, reset: true)
                return
            }
            connection.forwarded(sent)
            statistics.bytesToHost += UInt64(sent)
        }
        if sent < length { connection.pending.append(pieces, skipping: sent) }
    }

    /// Writes what is queued for the host socket; false if the connection died.
    @discardableResult
    private func flush(_ connection: VsockConnection) -> Bool {
        while !connection.pending.isEmpty {
            let result = connection.pending.withFront { VsockUnixSocket.send(connection.fd, [$0]) }
            switch result {
            case .transferred(let n):
                connection.pending.drop(n)
                connection.forwarded(n)
                statistics.bytesToHost += UInt64(n)
            case .wouldBlock:
                return true
            case .endOfFile, .failed:
                destroy(connection, reset: true)
                return false
            }
        }
        return true
    }

    private func replyReset(to header: VsockPacketHeader) {
        enqueueControl(VsockPacketHeader(srcCid: header.dstCid, dstCid: header.srcCid, srcPort: header.dstPort,
                                         dstPort: header.srcPort, op: .rst))
    }

    private func enqueueControl(_ header: VsockPacketHeader) {
        guard control.count < limits.maxControlPackets else {
            statistics.droppedPackets += 1
            return
        }
        control.append(header)
    }

    // MARK: Connection bookkeeping

    private func register(_ connection: VsockConnection) -> Bool {
        let events = connection.desiredEvents
        do {
            try loop.add(fd: connection.fd, events: events) { [weak self, weak connection] events in
                guard let self, let connection else { return }
                self.connectionReady(connection, events: events)
            }
        } catch {
            logger.warning("virtio-vsock: cannot watch a socket: \(error)")
            return false
        }
        connection.registered = true
        connection.registeredEvents = events
        return true
    }

    private func insert(_ connection: VsockConnection) {
        connections[connection.key] = connection
        localPortUse[connection.key.localPort, default: 0] += 1
        statistics.connectionsOpened += 1
    }

    /// Brings a connection's state to its consequences: half-closes the host socket,
    /// tears a finished connection down, watches the right events, queues rx work.
    private func refresh(_ connection: VsockConnection) {
        guard !connection.closed else { return }
        if connection.peerShutSend, connection.pending.isEmpty, !connection.hostWriteShut {
            Glibc.shutdown(connection.fd, Int32(SHUT_WR))
            connection.hostWriteShut = true
        }
        if connection.peerShutRecv, !connection.hostReadShut {
            Glibc.shutdown(connection.fd, Int32(SHUT_RD))
            connection.hostReadShut = true
        }
        if connection.finished {
            destroy(connection, reset: true)
            return
        }
        if connection.registered {
            let events = connection.desiredEvents
            if events != connection.registeredEvents {
                do {
                    try loop.modify(fd: connection.fd, events: events)
                    connection.registeredEvents = events
                } catch {
                    logger.warning("virtio-vsock \(connection.key): \(error)")
                    destroy(connection, reset: true)
                    return
                }
            }
        }
        if connection.hasRxWork, !connection.queuedForRx {
            connection.queuedForRx = true
            rxWork.append(connection)
        }
    }

    /// Closes the host socket and forgets the connection; with `reset`, the guest is told
    /// (if it knows of the connection at all).
    private func destroy(_ connection: VsockConnection, reset: Bool) {
        guard !connection.closed else { return }
        connection.closed = true
        if connections[connection.key] === connection {
            connections[connection.key] = nil
            let port = connection.key.localPort
            if let uses = localPortUse[port], uses > 1 { localPortUse[port] = uses - 1 } else { localPortUse[port] = nil }
        }
        if connection.registered { loop.remove(fd: connection.fd) }
        connection.registered = false
        Glibc.close(connection.fd)
        connection.pending.removeAll()
        if reset, !connection.hostInitiated || connection.requestSent {
            enqueueControl(VsockPacketHeader(srcCid: Self.hostCid, dstCid: guestCid, srcPort: connection.key.localPort,
                                             dstPort: connection.key.peerPort, op: .rst))
        }
    }

    private func allocateEphemeralPort() -> UInt32? {
        for _ in 0...limits.maxConnections {
            let port = nextEphemeral
            nextEphemeral = port == UInt32.max ? Self.ephemeralBase : port + 1
            if localPortUse[port] == nil { return port }
        }
        return nil
    }

    // MARK: Host sockets (event loop thread)

    private func listenerReady() {
        locked {
            guard !shutDown else { return }
            accepting: while true {
                let fd: Int32
                switch VsockUnixSocket.accept(listenerFd) {
                case .accepted(let accepted):
                    fd = accepted
                case .none:
                    break accepting
                case .exhausted(let err):
                    logger.warning("virtio-vsock: accept on \(udsPath) failed (errno \(err)); pausing the listener")
                    try? loop.modify(fd: listenerFd, events: 0)
                    listenerPaused = true
                    break accepting
                }
                guard pendingClients.count < limits.maxPendingClients else {
                    statistics.rejectedClients += 1
                    Glibc.close(fd)
                    continue
                }
                let client = PendingClient(fd: fd, deadline: ProcessClock.monotonicNanos() + limits.handshakeTimeoutNs)
                do {
                    try loop.add(fd: fd, events: EventLoop.readable) { [weak self, weak client] _ in
                        guard let self, let client else { return }
                        self.clientReady(client)
                    }
                } catch {
                    Glibc.close(fd)
                    continue
                }
                pendingClients[fd] = client
            }
            updateTimer()
        }
    }

    private func dropClient(_ client: PendingClient) {
        if pendingClients[client.fd] === client { pendingClients[client.fd] = nil }
        loop.remove(fd: client.fd)
        Glibc.close(client.fd)
    }

    /// Reads the CONNECT line without consuming a byte past its newline (what follows
    /// is stream data).
    private func clientReady(_ client: PendingClient) {
        locked {
            guard pendingClients[client.fd] === client else { return }
            let (result, bytes) = VsockUnixSocket.peek(client.fd, count: HybridVsockLine.maxLength - client.line.count)
            switch result {
            case .transferred:
                let take = bytes.firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? bytes.count
                guard VsockUnixSocket.discard(client.fd, count: take) else {
                    reject(client)
                    return
                }
                client.line += bytes[..<take]
                switch HybridVsockLine.parseConnect(client.line) {
                case .incomplete: break
                case .invalid: reject(client)
                case .line(let port, _): hostConnect(client, port: port)
                }
            case .wouldBlock:
                break
            case .endOfFile, .failed:
                reject(client)
            }
            updateTimer()
            pumpRx()
        }
    }

    private func reject(_ client: PendingClient) {
        statistics.rejectedClients += 1
        dropClient(client)
    }

    /// A host client asked for guest port `port`: send the guest a REQUEST.
    private func hostConnect(_ client: PendingClient, port: UInt32) {
        pendingClients[client.fd] = nil
        loop.remove(fd: client.fd)
        guard connections.count < limits.maxConnections, let local = allocateEphemeralPort() else {
            statistics.rejectedClients += 1
            Glibc.close(client.fd)
            return
        }
        let connection = VsockConnection(key: VsockConnectionKey(localPort: local, peerPort: port), fd: client.fd,
                                         hostInitiated: true, state: .connecting, bufAlloc: limits.bufferSize)
        connection.needsRequest = true
        // The connect timeout starts when the REQUEST reaches the guest (as Firecracker's);
        // until then the client's own hang-up or the connection limit bounds the wait.
        connection.deadline = .max
        guard register(connection) else {
            Glibc.close(client.fd)
            return
        }
        insert(connection)
        refresh(connection)
    }

    private func connectionReady(_ connection: VsockConnection, events: UInt32) {
        locked {
            guard !connection.closed, connections[connection.key] === connection else { return }
            let trouble = events & (EventLoop.hangup | EventLoop.error) != 0
            if connection.state == .connecting {
                // Nothing is read before the guest accepts; only a client leaving matters.
                if trouble, VsockUnixSocket.isHungUpOrFailed(connection.fd) {
                    destroy(connection, reset: true)
                }
                pumpRx()
                return
            }
            if events & EventLoop.error != 0, VsockUnixSocket.hasError(connection.fd) {
                destroy(connection, reset: true)
                pumpRx()
                return
            }
            if trouble, VsockUnixSocket.isHungUpOrFailed(connection.fd) {
                // Hung up: what is left to read ends in EOF, writes will fail. epoll would
                // report the hangup forever, so stop watching.
                loop.remove(fd: connection.fd)
                connection.registered = false
                connection.hostReadable = true
                connection.hostHungUp = true
            }
            if events & EventLoop.readable != 0 { connection.hostReadable = true }
            if events & EventLoop.writable != 0 || !connection.registered {
                guard flush(connection) else {
                    pumpRx()
                    return
                }
            }
            refresh(connection)
            pumpRx()
        }
    }

    private func timerFired() {
        locked {
            guard !shutDown else { return }  // the timerfd is closed; its number may be reused
            timer.consume()
            if listenerPaused {
                listenerPaused = false
                try? loop.modify(fd: listenerFd, events: EventLoop.readable)
            }
            expireDeadlines(now: ProcessClock.monotonicNanos())
            pumpRx()
        }
    }

    /// Closes host clients that never sent their line and host-initiated connections the
    /// guest never answered (with an RST, so that a late RESPONSE finds nothing).
    private func expireDeadlines(now: UInt64) {
        for client in Array(pendingClients.values) where client.deadline <= now { reject(client) }
        for connection in Array(connections.values) where connection.state == .connecting && connection.deadline <= now {
            logger.info("virtio-vsock \(connection.key): the guest did not answer the connection request")
            destroy(connection, reset: true)
        }
        updateTimer()
    }

    private func updateTimer() {
        let waiting = listenerPaused || !pendingClients.isEmpty || connections.values.contains { $0.state == .connecting }
        if waiting && !shutDown {
            timer.armPeriodic(periodNs: max(10_000_000, min(limits.connectTimeoutNs, limits.handshakeTimeoutNs) / 4))
        } else {
            timer.disarm()
        }
    }

    // MARK: Packets to the guest (rx queue)

    /// Fills rx buffers outside a queue notification (a host socket's event). A broken
    /// ring fails the device through the transport, and nothing reaches the guest until
    /// the driver resets it.
    private func pumpRx() {
        do {
            try fillRx()
        } catch {
            context?.failure.report(error, in: "rx queue")
            context = nil
        }
    }

    /// Hands the guest every packet owed, while it has rx buffers: standalone RSTs first,
    /// then one packet per connection in turn.
    private func fillRx() throws {
        guard let context else { return }
        let rx = context.queues[0]
        defer {
            if rxUsed {
                rxUsed = false
                context.interrupt.signalUsed(rx, context.memory)
            }
        }
        while true {
            if let header = control.first {
                guard let chain = try takeRxChain(context) else { return }
                control.removeFirst()
                var writer = chain.writer(context.memory)
                header.scatter(into: writer.take(VsockPacketHeader.size))
                try rx.addUsed(context.memory, head: chain.head, length: UInt32(VsockPacketHeader.size))
                rxUsed = true
                if header.knownOp == .rst { statistics.resetsSent += 1 }
                continue
            }
            guard let connection = rxWork.first else { return }
            guard connection.hasRxWork else {
                rxWork.removeFirst()
                connection.queuedForRx = false
                continue
            }
            guard let chain = try takeRxChain(context) else { return }
            rxWork.removeFirst()
            connection.queuedForRx = false
            if let length = writePacket(for: connection, into: chain, context.memory) {
                try rx.addUsed(context.memory, head: chain.head, length: length)
                rxUsed = true
            } else {
                heldRxChain = chain
            }
            refresh(connection)
        }
    }

    /// The next usable rx chain (one kept from a packet that did not happen first);
    /// chains too small for a header are returned empty.
    private func takeRxChain(_ context: VirtioDeviceContext) throws -> DescriptorChain? {
        if let chain = heldRxChain {
            heldRxChain = nil
            return chain
        }
        let rx = context.queues[0]
        while true {
            do {
                guard let chain = try rx.pop(context.memory) else { return nil }
                guard chain.writableLength >= VsockPacketHeader.size else {
                    statistics.malformedPackets += 1
                    try rx.addUsed(context.memory, head: chain.head, length: 0)
                    rxUsed = true
                    continue
                }
                return chain
            } catch let error as DescriptorChainError {
                statistics.malformedPackets += 1
                rxUsed = true
                logger.warning("virtio-vsock: bad rx chain: \(error)")
            }
        }
    }

    /// Writes the connection's next packet into `chain`: REQUEST, RESPONSE, data read
    /// straight from the host socket into guest memory (or the SHUTDOWN that its end of
    /// file becomes), else a CREDIT_UPDATE. Returns the used length, nil if there was
    /// nothing to send after all.
    private func writePacket(for connection: VsockConnection, into chain: DescriptorChain, _ memory: GuestMemory) -> UInt32? {
        var writer = chain.writer(memory)
        let headerPieces = writer.take(VsockPacketHeader.size)
        var header = VsockPacketHeader(srcCid: Self.hostCid, dstCid: guestCid, srcPort: connection.key.localPort,
                                       dstPort: connection.key.peerPort, op: .creditUpdate)
        var op: VsockPacketHeader.Op?
        if connection.needsRequest {
            connection.needsRequest = false
            connection.requestSent = true
            connection.deadline = ProcessClock.monotonicNanos() &+ limits.connectTimeoutNs
            op = .request
        } else if connection.needsResponse {
            connection.needsResponse = false
            op = .response
        } else if connection.needsFullShutdown {
            // A half-closed host socket was closed for good since its end of file.
            op = .shutdown
            header.flags = VsockPacketHeader.shutdownSend | VsockPacketHeader.shutdownReceive
        } else if connection.canSendData, writer.remaining == 0 {
            // A buffer with room for a header only: it carries our credit instead.
            op = .creditUpdate
        } else if connection.canSendData {
            let capacity = min(writer.remaining, limits.maxPacketPayload, Int(connection.peerCredit))
            switch VsockUnixSocket.read(connection.fd, into: writer.take(capacity)) {
            case .transferred(let n):
                op = .rw
                header.len = UInt32(n)
                connection.rxCnt &+= UInt32(n)
                statistics.bytesToGuest += UInt64(n)
                // A short read drained the socket; epoll says when there is more (unless
                // it hung up: then read on to the end of file).
                if n < capacity, connection.registered { connection.hostReadable = false }
            case .endOfFile:
                // Every byte the host sent is the guest's now. A client that only shut its
                // writing side still reads: SHUTDOWN(SEND); one that is gone takes nothing
                // more either: SHUTDOWN(SEND|RECEIVE), which Linux answers with an RST.
                connection.hostEOF = true
                if !connection.hostHungUp, VsockUnixSocket.isHungUpOrFailed(connection.fd) { connection.hostHungUp = true }
                op = .shutdown
                header.flags = VsockPacketHeader.shutdownSend
                    | (connection.hostHungUp ? VsockPacketHeader.shutdownReceive : 0)
            case .wouldBlock:
                connection.hostReadable = false
            case .failed:
                destroy(connection, reset: false)
                op = .rst
                statistics.resetsSent += 1
            }
        }
        if op == nil, connection.needsCreditUpdate { op = .creditUpdate }
        guard let op else { return nil }
        if op == .shutdown { connection.shutdownSent |= header.flags }
        if op != .rst {
            connection.needsCreditUpdate = false
            connection.lastAdvertisedFwdCnt = connection.fwdCnt
            header.bufAlloc = connection.bufAlloc
            header.fwdCnt = connection.fwdCnt
        }
        header.op = op.rawValue
        header.scatter(into: headerPieces)
        return UInt32(VsockPacketHeader.size) + header.len
    }
}
