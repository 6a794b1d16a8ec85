import VMM

/// What a virtio device model implements; the transport (virtio-mmio) does the rest:
/// registers, feature negotiation, queue setup, status, notifications and interrupts.
public protocol VirtioDevice: AnyObject, Sendable, DeviceCountersSource {
    var deviceType: VirtioDeviceType { get }
    /// Maximum size of each queue; the count is the number of queues.
    var queueMaxSizes: [UInt16] { get }
    /// Features offered, including VIRTIO_F_VERSION_1 and the ring features.
    var offeredFeatures: UInt64 { get }
    /// Device-specific configuration space (little-endian).
    func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer)
    func writeConfig(offset: Int, from data: UnsafeRawBufferPointer)
    /// The driver set DRIVER_OK: the queues are valid and the features final.
    func activate(_ context: VirtioDeviceContext) throws
    /// The driver notified queue `index` (called on the event loop thread). Bad requests
    /// are answered and skipped; throwing means the queue itself is unusable.
    func process(queue index: Int) throws
    /// The driver reset the device, or the device failed: drop every reference to guest
    /// memory and queues and stop serving the guest from backend events.
    func reset()
    /// An eventfd the backend signals when work completes (e.g. Linux AIO), or nil.
    var backendEvents: EventFd? { get }
    /// `backendEvents` fired (event loop thread, under the transport lock).
    func processBackendEvents() throws
    /// Whether another process (a vhost-user backend) serves the active queues: it reads
    /// the doorbells and raises the interrupt itself, so the event loop leaves them alone.
    /// Read under the transport lock, after activation and after backend events.
    var queuesServedByBackend: Bool { get }
    /// The VM is going away: release host resources (listening sockets and the like).
    func shutdown()
    /// The device's timers (rate limiters' refills, statistics polling), each with the
    /// queue to run again when it fires.
    var timedQueues: [TimedQueue] { get }
    /// Whether the last `process` changed the configuration space itself (the balloon's
    /// automatic DONE); the transport then announces it. Reading clears it.
    func takeConfigurationChange() -> Bool
}

/// What an activated device works with.
public struct VirtioDeviceContext: Sendable {
    public let memory: GuestMemory
    public let queues: [VirtQueue]
    public let interrupt: VirtioInterrupt
    public let features: UInt64
    /// Where the device's own event handlers report a ring they found unusable.
    public let failure: VirtioDeviceFailure

    public init(memory: GuestMemory, queues: [VirtQueue], interrupt: VirtioInterrupt, features: UInt64,
                failure: VirtioDeviceFailure) {
        self.memory = memory
        self.queues = queues
        self.interrupt = interrupt
        self.features = features
        self.failure = failure
    }
}

extension VirtioDevice {
    public func writeConfig(offset: Int, from data: UnsafeRawBufferPointer) {}
    public var backendEvents: EventFd? { nil }
    public func processBackendEvents() throws {}
    public var queuesServedByBackend: Bool { false }
    public func shutdown() {}
    public var timedQueues: [TimedQueue] { [] }
    public func takeConfigurationChange() -> Bool { false }

    /// Reads from a byte image of the configuration space, zero past its end.
    public func readConfig(_ config: [UInt8], offset: Int, into data: UnsafeMutableRawBufferPointer) {
        for i in 0..<data.count {
            let at = offset + i
            data[i] = at >= 0 && at < config.count ? config[at] : 0
        }
    }
}
