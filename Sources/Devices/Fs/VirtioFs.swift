import Logging
import Synchronization
import VMM

/// virtio-fs (virtio 1.2, 5.11) served by a vhost-user backend such as virtiofsd: the
/// backend maps guest RAM (a shared memfd) and serves the hiprio queue (0) and the
/// request queues (1...) itself, woken by each queue's doorbell (the KVM ioeventfd) and
/// interrupting the guest through the device's irqfd, so that no request passes through
/// the VMM. The VMM only configures the backend at DRIVER_OK and stops it at reset.
///
/// A backend that dies, hangs or answers garbage costs this device alone: a failed
/// set-up marks it NEEDS_RESET, and a backend gone while the device runs leaves the VMM
/// answering every further request with EIO (`FuseFailureReply`), so the guest sees
/// errors rather than hung system calls. Requests the backend had taken are lost.
public final class VirtioFs: VirtioDevice, @unchecked Sendable {  // mutable state behind `state`; the frontend is used only under it
    public let deviceType = VirtioDeviceType.fs
    public let queueMaxSizes: [UInt16]
    public let offeredFeatures: UInt64
    public let tag: String
    public let requestQueues: Int
    let frontend: VhostUserFrontend
    let loop: EventLoop
    let logger: Logger
    /// Signalled by the backend for a broken ring (its VRING_ERR fd) and by the hang-up
    /// watch; `processBackendEvents` tells which.
    private let events: EventFd
    private let hungUp = Atomic<Bool>(false)

    private struct State {
        var context: VirtioDeviceContext?
        var started: [Int] = []
        /// The backend is unusable: set-up fails, and an active device answers with EIO.
        var backendGone = false
        var answering = false
        var failedRequests: UInt64 = 0
    }
    private let state = Mutex(State())

    /// The features offered to the driver: what the backend serves of what this
    /// transport speaks (split rings).
    static let supportedFeatures = VirtioFeature.version1 | VirtioFeature.ringIndirectDescriptors | VirtioFeature.ringEventIndex

    /// Connects to the backend at `socketPath` (it must be listening: virtiofsd is started
    /// first) and learns its features.
    public init(tag: String, socketPath: String, requestQueues: Int, queueSize: UInt16, loop: EventLoop, logger: Logger,
                replyTimeoutMs: Int32 = 5000) throws {
        self.tag = tag
        self.requestQueues = requestQueues
        self.loop = loop
        self.logger = logger
        queueMaxSizes = Array(repeating: queueSize, count: 1 + requestQueues)
        frontend = try VhostUserFrontend(connectingTo: socketPath, timeoutMs: replyTimeoutMs)
        offeredFeatures = frontend.backendFeatures & Self.supportedFeatures
        guard offeredFeatures & VirtioFeature.version1 != 0 else { throw VhostUserError.unsupported("VIRTIO_F_VERSION_1") }
        if let most = frontend.maxQueues, most < UInt64(1 + requestQueues) {
            throw VhostUserError.unsupported("\(1 + requestQueues) queues (it serves \(most))")
        }
        events = try EventFd()
        try loop.add(fd: frontend.fd, events: EventLoop.hangup) { [weak self] _ in self?.backendHungUp() }
    }

    deinit { loop.remove(fd: frontend.fd) }

    public func shutdown() { loop.remove(fd: frontend.fd) }

    /// Requests answered with EIO since the backend went away.
    public var failedRequests: UInt64 { state.withLock { $0.failedRequests } }
    /// Whether the backend is gone (exited, killed, or broke the protocol).
    public var backendGone: Bool { state.withLock { $0.backendGone } || hungUp.load(ordering: .acquiring) }

    /// struct virtio_fs_config: tag[36] (NUL-padded), num_request_queues (le32).
    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        var config = [UInt8](repeating: 0, count: 40)
        for (i, byte) in tag.utf8.prefix(36).enumerated() { config[i] = byte }
        let count = UInt32(requestQueues).littleEndian
        withUnsafeBytes(of: count) { for i in 0..<4 { config[36 + i] = $0[i] } }
        readConfig(config, offset: offset, into: data)
    }

    public var backendEvents: EventFd? { events }

    /// The backend's queues, unless it is gone and the VMM answers them.
    public var queuesServedByBackend: Bool { state.withLock { !$0.answering } }

    public func activate(_ context: VirtioDeviceContext) throws {
        try state.withLock { s in
            guard !s.backendGone, !hungUp.load(ordering: .acquiring) else {
                s.backendGone = true
                throw VhostUserError.closed(during: "an earlier request")
            }
            do {
                try frontend.setFeatures(context.features & offeredFeatures)
                try frontend.setMemoryTable(context.memory)
                for (index, queue) in context.queues.enumerated() where queue.isActive {
                    guard let doorbell = queue.notifier,
                          let descriptors = context.memory.hostAddress(of: queue.descriptorTable, length: 16 * Int(queue.size)),
                          let available = context.memory.hostAddress(of: queue.availableRing, length: 6 + 2 * Int(queue.size)),
                          let used = context.memory.hostAddress(of: queue.usedRing, length: 6 + 8 * Int(queue.size)) else {
                        throw VirtQueueError.notActive
                    }
                    try frontend.startQueue(index, size: queue.size, descriptors: descriptors, available: available, used: used,
                                            kick: doorbell.fd.rawValue, call: context.interrupt.eventFd.fd.rawValue,
                                            err: events.fd.rawValue)
                    s.started.append(index)
                }
            } catch let error as VhostUserError {
                s.backendGone = true
                throw error
            }
            s.context = context
        }
    }

    /// Nothing reaches here while the backend serves the queues (the loop does not watch
    /// their doorbells); afterwards each request gets its EIO.
    public func process(queue index: Int) throws {
        try state.withLock { s in
            guard s.answering, let context = s.context, index < context.queues.count else { return }
            let queue = context.queues[index]
            var answered = 0
            while let chain = try queue.nextChain(context.memory, badChain: { _ in }) {
                try queue.addUsed(context.memory, head: chain.head, length: FuseFailureReply.answer(chain, context.memory))
                answered += 1
            }
            s.failedRequests += UInt64(answered)
            if answered > 0 { context.interrupt.signalUsed(queue, context.memory) }
        }
    }

    /// The driver reset the device (or it failed): the backend stops every queue it had.
    public func reset() {
        state.withLock { s in
            if !s.backendGone {
                for index in s.started {
                    do {
                        try frontend.stopQueue(index)
                    } catch {
                        logger.error("virtio-fs '\(tag)': stopping queue \(index): \(error)")
                        s.backendGone = true
                        break
                    }
                }
            }
            s.started = []
            s.context = nil
            s.answering = false
        }
    }

    /// The backend signalled an error fd, or hung up.
    public func processBackendEvents() throws {
        _ = events.consume()
        try state.withLock { s in
            guard let context = s.context, !s.answering else { return }
            guard hungUp.load(ordering: .acquiring) else {
                throw VhostUserError.malformedReply("the backend reported a broken ring")
            }
            s.backendGone = true
            for index in s.started { try context.queues[index].adoptRing(context.memory) }
            s.answering = true
            logger.error("virtio-fs '\(tag)': the backend (\(frontend.socketPath)) went away; requests fail with EIO until the driver resets the device")
        }
    }

    /// Event loop: the socket hung up. Watched no more (it stays hung up).
    private func backendHungUp() {
        loop.remove(fd: frontend.fd)
        hungUp.store(true, ordering: .releasing)
        events.signal()
    }
}
