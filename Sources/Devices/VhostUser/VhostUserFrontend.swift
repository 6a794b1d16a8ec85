import Glibc
import LinuxSupport
import VMM

/// The VMM's end of one vhost-user connection: a Unix socket to a backend process
/// (virtiofsd) that serves a device's virtqueues straight from guest memory. Requests are
/// synchronous, each reply awaited for at most `timeoutMs`, so that a backend that hangs
/// costs the caller a bounded wait and fails its device rather than the VMM. Not
/// thread-safe: its device calls it under its own lock.
public final class VhostUserFrontend: @unchecked Sendable {  // used only under the owning device's lock
    public let socketPath: String
    private let socket: OwnedFileDescriptor
    private let timeoutMs: Int32
    /// The backend's virtio features (GET_FEATURES), with the vhost-user bit.
    public let backendFeatures: UInt64
    /// The protocol features both sides speak.
    public let protocolFeatures: UInt64
    /// How many queues the backend serves at most (GET_QUEUE_NUM), if it said.
    public let maxQueues: UInt64?

    /// The protocol features this frontend asks for.
    static let wantedProtocolFeatures = VhostUserFeature.replyAck | VhostUserFeature.multiQueue

    /// Connects and introduces itself: SET_OWNER, the features, the protocol features.
    public init(connectingTo path: String, timeoutMs: Int32 = 5000) throws(VhostUserError) {
        socketPath = path
        self.timeoutMs = timeoutMs
        guard let address = UnixSocketAddress(path) else {
            throw .system(SystemError("connect \(path): the path is too long", errno: ENAMETOOLONG))
        }
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(SystemError("socket(AF_UNIX)")) }
        socket = OwnedFileDescriptor(fd)
        // A backend that stops reading must not block a send forever either.
        var sendTimeout = timeval(tv_sec: Int(timeoutMs / 1000), tv_usec: Int(timeoutMs % 1000) * 1000)
        guard setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
            throw .system(SystemError("setsockopt(SO_SNDTIMEO)"))
        }
        guard address.connect(fd) == 0 else { throw .system(SystemError("connect \(path)")) }
        try Self.send(fd, VhostUserMessage(.setOwner), fds: [])
        let features = try Self.ask(fd, .getFeatures, timeoutMs: timeoutMs)
        backendFeatures = features
        var protocolFeatures: UInt64 = 0
        if features & VhostUserFeature.protocolFeatures != 0 {
            protocolFeatures = try Self.ask(fd, .getProtocolFeatures, timeoutMs: timeoutMs) & Self.wantedProtocolFeatures
            try Self.send(fd, VhostUserMessage(.setProtocolFeatures, payload: VhostUserMessage.u64(protocolFeatures)), fds: [])
        }
        self.protocolFeatures = protocolFeatures
        maxQueues = protocolFeatures & VhostUserFeature.multiQueue != 0 ? try Self.ask(fd, .getQueueNum, timeoutMs: timeoutMs) : nil
    }

    /// The socket, for watching the backend hang up.
    public var fd: Int32 { socket.rawValue }

    /// The virtio features the driver accepted (plus the vhost-user bit when spoken).
    public func setFeatures(_ features: UInt64) throws(VhostUserError) {
        let value = features | (backendFeatures & VhostUserFeature.protocolFeatures)
        try request(VhostUserMessage(.setFeatures, payload: VhostUserMessage.u64(value)))
    }

    /// Every region of guest RAM, with its memfd: the backend maps them all.
    public func setMemoryTable(_ memory: GuestMemory) throws(VhostUserError) {
        guard memory.isShared else { throw .unsupported("guest memory that is not shared (the VMM must map it from a memfd)") }
        guard memory.regions.count <= DescriptorPassing.maxDescriptors else {
            throw .unsupported("more than \(DescriptorPassing.maxDescriptors) memory regions")
        }
        let regions = memory.regions.map {
            VhostUserMessage.MemoryRegion(guestAddress: $0.guestAddress, size: $0.size, userAddress: $0.hostAddress, mmapOffset: 0)
        }
        try request(VhostUserMessage(.setMemTable, payload: VhostUserMessage.memoryTable(regions)), fds: memory.regions.map(\.fd))
    }

    /// Hands one virtqueue to the backend. The ring addresses are the VMM's own; kick is
    /// the queue's doorbell (KVM's ioeventfd), call the device's interrupt (KVM's irqfd),
    /// err where the backend reports a broken ring.
    public func startQueue(_ index: Int, size: UInt16, descriptors: UInt64, available: UInt64, used: UInt64,
                           kick: Int32, call: Int32, err: Int32) throws(VhostUserError) {
        let queue = UInt32(index)
        try request(VhostUserMessage(.setVringNum, payload: VhostUserMessage.vringState(index: queue, num: UInt32(size))))
        try request(VhostUserMessage(.setVringBase, payload: VhostUserMessage.vringState(index: queue, num: 0)))
        try request(VhostUserMessage(.setVringAddr, payload: VhostUserMessage.vringAddress(
            index: queue, descriptors: descriptors, used: used, available: available)))
        try request(VhostUserMessage(.setVringKick, payload: VhostUserMessage.vringFile(index: queue)), fds: [kick])
        try request(VhostUserMessage(.setVringCall, payload: VhostUserMessage.vringFile(index: queue)), fds: [call])
        try request(VhostUserMessage(.setVringErr, payload: VhostUserMessage.vringFile(index: queue)), fds: [err])
        if backendFeatures & VhostUserFeature.protocolFeatures != 0 {
            try request(VhostUserMessage(.setVringEnable, payload: VhostUserMessage.vringState(index: queue, num: 1)))
        }
    }

    /// Stops the backend's use of a queue (GET_VRING_BASE); returns where it stopped.
    @discardableResult
    public func stopQueue(_ index: Int) throws(VhostUserError) -> UInt32 {
        let payload = VhostUserMessage.vringState(index: UInt32(index), num: 0)
        try Self.send(fd, VhostUserMessage(.getVringBase, payload: payload), fds: [])
        let reply = try Self.receive(fd, timeoutMs: timeoutMs, during: .getVringBase)
        try reply.checkReply(to: .getVringBase, size: 8)
        return reply.payload.loadLE(UInt32.self, at: 4)
    }

    // MARK: Messages

    /// Sends a request that has no reply of its own; with REPLY_ACK, waits for the
    /// backend's verdict on it.
    private func request(_ message: VhostUserMessage, fds: [Int32] = []) throws(VhostUserError) {
        var message = message
        let ack = protocolFeatures & VhostUserFeature.replyAck != 0
        if ack { message.flags |= VhostUserMessage.needReplyFlag }
        try Self.send(fd, message, fds: fds)
        guard ack, let request = VhostUserRequest(rawValue: message.request) else { return }
        let reply = try Self.receive(fd, timeoutMs: timeoutMs, during: request)
        try reply.checkReply(to: request, size: 8)
        let status = reply.payload.loadLE(UInt64.self, at: 0)
        guard status == 0 else { throw .refused(request, status: status) }
    }

    /// A request answered with one u64.
    private static func ask(_ fd: Int32, _ request: VhostUserRequest, timeoutMs: Int32) throws(VhostUserError) -> UInt64 {
        try send(fd, VhostUserMessage(request), fds: [])
        let reply = try receive(fd, timeoutMs: timeoutMs, during: request)
        try reply.checkReply(to: request, size: 8)
        return reply.payload.loadLE(UInt64.self, at: 0)
    }

    private static func send(_ fd: Int32, _ message: VhostUserMessage, fds: [Int32]) throws(VhostUserError) {
        let during = VhostUserRequest(rawValue: message.request)?.description ?? "request \(message.request)"
        do {
            try DescriptorPassing.send(on: fd, payload: message.bytes, fds: fds)
        } catch {
            if error.errno == EPIPE || error.errno == ECONNRESET { throw .closed(during: during) }
            if error.errno == EAGAIN, let request = VhostUserRequest(rawValue: message.request) { throw .timedOut(request) }
            throw .system(error)
        }
    }

    /// Reads one whole message: the header, then exactly the payload it announced (bounded),
    /// all within one deadline, so that a backend trickling bytes cannot stall the caller
    /// for longer than one timeout.
    private static func receive(_ fd: Int32, timeoutMs: Int32, during request: VhostUserRequest) throws(VhostUserError) -> VhostUserMessage {
        let deadline = ProcessClock.monotonicNanos() + UInt64(timeoutMs) * 1_000_000
        let header = try readExactly(fd, VhostUserMessage.headerSize, deadline: deadline, during: request)
        let (code, flags, size) = try VhostUserMessage.parseHeader(header)
        let payload = try readExactly(fd, size, deadline: deadline, during: request)
        return VhostUserMessage(request: code, flags: flags, payload: payload)
    }

    private static func readExactly(_ fd: Int32, _ count: Int, deadline: UInt64, during request: VhostUserRequest) throws(VhostUserError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var have = 0
        while have < count {
            let now = ProcessClock.monotonicNanos()
            guard now < deadline else { throw .timedOut(request) }
            let left = (deadline - now + 999_999) / 1_000_000
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(clamping: left))
            if ready < 0 && errno == EINTR { continue }
            guard ready >= 0 else { throw .system(SystemError("poll")) }
            guard ready > 0 else { throw .timedOut(request) }
            let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + have, count - have, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == ECONNRESET { throw .closed(during: request.description) }
            guard n >= 0 else { throw .system(SystemError("recv (\(request))")) }
            guard n > 0 else { throw .closed(during: request.description) }
            have += n
        }
        return bytes
    }
}
