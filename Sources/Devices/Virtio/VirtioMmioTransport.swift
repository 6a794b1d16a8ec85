import Logging
import Synchronization
import VMM

/// The virtio-mmio transport, register layout version 2 (virtio 1.2, 4.2.2): one 512-byte
/// window per device. Register accesses come from vCPU threads; queue notifications arrive
/// as eventfd signals (from KVM's ioeventfd, or from a QueueNotify write that reached us)
/// and are processed on the event loop, under the same lock as the registers.
public final class VirtioMmioTransport: BusDevice, @unchecked Sendable {  // registers behind `state` (Mutex); `loop` is set and read under that lock too
    public static let windowSize: UInt64 = 0x200
    public static let queueNotifyOffset: UInt64 = 0x50
    static let magic: UInt32 = 0x7472_6976  // "virt"
    static let version: UInt32 = 2
    static let vendorId: UInt32 = 0x5354_414B  // "KATS"

    public let device: any VirtioDevice
    public let interrupt: VirtioInterrupt
    /// One eventfd per queue: the doorbell the driver rings through QueueNotify.
    public let notifiers: [EventFd]
    /// Where the device's own event handlers report a broken ring.
    public let failure: VirtioDeviceFailure
    let memory: GuestMemory
    /// Every line here follows from what the driver did, and a driver can reset and
    /// repeat at will: rate limited.
    let logger: RateLimitedLogger
    /// The loop the doorbells are watched on (set by `attach`): disarmed while the device
    /// has failed.
    private var loop: EventLoop?

    private struct State {
        var status: UInt32 = 0
        var deviceFeaturesSelect: UInt32 = 0
        var driverFeaturesSelect: UInt32 = 0
        var driverFeatures: UInt64 = 0
        var queueSelect: UInt32 = 0
        var active = false
        var configGeneration: UInt32 = 0
        /// The event loop leaves the doorbells to a backend (`queuesServedByBackend`).
        var doorbellsLent = false
    }

    private let state = Mutex(State())
    private let queues: [VirtQueue]

    public init(device: any VirtioDevice, memory: GuestMemory, interrupt: VirtioInterrupt, logger: Logger) throws {
        self.device = device
        self.memory = memory
        self.interrupt = interrupt
        self.logger = RateLimitedLogger(logger)
        let notifiers = try device.queueMaxSizes.map { _ in try EventFd() }
        self.notifiers = notifiers
        queues = zip(device.queueMaxSizes, notifiers).map { VirtQueue(maxSize: $0, notifier: $1) }
        failure = try VirtioDeviceFailure()
    }

    public var isActive: Bool { state.withLock { $0.active } }
    public var status: UInt32 { state.withLock { $0.status } }

    /// Hooks the queue doorbells (and the backend's completions) into the event loop.
    public func attach(to loop: EventLoop) throws {
        state.withLock { _ in self.loop = loop }
        try loop.add(fd: failure.eventFd.fd.rawValue, events: EventLoop.readable) { [weak self] _ in
            self?.failureReported()
        }
        for (index, notifier) in notifiers.enumerated() {
            try loop.add(fd: notifier.fd.rawValue, events: EventLoop.readable) { [weak self] _ in
                notifier.consume()
                self?.notified(queue: index)
            }
        }
        if let events = device.backendEvents {
            try loop.add(fd: events.fd.rawValue, events: EventLoop.readable) { [weak self] _ in
                self?.backendEventsFired()
            }
        }
        // A device timer (a throttled queue's refill, a statistics poll) runs its queue.
        for timed in device.timedQueues {
            try loop.add(fd: timed.timer.fd, events: EventLoop.readable) { [weak self] _ in
                timed.fired()
                self?.notified(queue: timed.queue)
            }
        }
    }

    /// Registers each queue's doorbell as a KVM ioeventfd on QueueNotify (datamatch = the
    /// queue index), so that a notification costs no exit to the VMM.
    public func registerIoeventfds(_ vm: Vm, base: UInt64) throws {
        for (index, notifier) in notifiers.enumerated() {
            try vm.registerIoeventfd(notifier, address: base + Self.queueNotifyOffset, length: 4, isPio: false,
                                     datamatch: UInt64(index))
        }
    }

    private func backendEventsFired() {
        state.withLock { s in
            guard s.active else {
                device.backendEvents?.consume()
                return
            }
            do {
                try device.processBackendEvents()
                lendDoorbells(&s)
            } catch {
                fail(&s, because: "backend: \(error)")
            }
        }
    }

    /// A device's own event handler reported a broken ring (see `VirtioDeviceFailure`).
    func failureReported() {
        state.withLock { s in
            guard let reason = failure.reason(), s.active else { return }
            fail(&s, because: reason)
        }
    }

    /// Runs the device's queue processing if the device is live. A queue the device
    /// cannot use any more (its rings broken, not just one bad request) fails the device.
    public func notified(queue index: Int) {
        state.withLock { s in
            guard s.active, index < queues.count, queues[index].isActive else { return }
            queues[index].beginPass()
            do {
                try device.process(queue: index)
                if device.takeConfigurationChange() {
                    s.configGeneration &+= 1
                    interrupt.signal(VirtioInterrupt.configChange)
                }
            } catch {
                fail(&s, because: "queue \(index): \(error)")
            }
        }
    }

    /// The device cannot go on until the driver resets it: DEVICE_NEEDS_RESET and a
    /// configuration interrupt for the driver, the device disarmed (its event sources and
    /// doorbells no longer serve the guest, its references to the rings dropped), one log
    /// line. The other devices are untouched. Also the answer to a DRIVER_OK the device
    /// cannot accept, where `reset` undoes whatever part of the activation had happened.
    private func fail(_ s: inout State, because reason: String) {
        logger.error("virtio-\(device.deviceType): \(reason); the device needs a reset")
        device.reset()
        for queue in queues { queue.deactivate() }
        s.active = false
        s.status |= VirtioStatus.deviceNeedsReset
        s.doorbellsLent = false
        watchDoorbells(false)
        interrupt.signal(VirtioInterrupt.configChange)
    }

    /// Leaves the doorbells to the device's backend while it serves the queues, and takes
    /// them back when it no longer does (without consuming a pending ring: the backend
    /// may not have read it yet, or the device now answers it).
    private func lendDoorbells(_ s: inout State) {
        let lend = s.active && device.queuesServedByBackend
        guard lend != s.doorbellsLent, let loop else { return }
        s.doorbellsLent = lend
        for notifier in notifiers { try? loop.modify(fd: notifier.fd.rawValue, events: lend ? 0 : EventLoop.readable) }
        // Taken back: look at every queue once, for what was rung meanwhile.
        if !lend { for notifier in notifiers { notifier.signal() } }
    }

    /// Doorbells rung while the device was failed are dropped with the rings they named.
    private func watchDoorbells(_ armed: Bool) {
        guard let loop else { return }
        for notifier in notifiers {
            notifier.consume()
            try? loop.modify(fd: notifier.fd.rawValue, events: armed ? EventLoop.readable : 0)
        }
    }

    /// Runs `body` with the device under the transport lock: no queue processing runs
    /// meanwhile (backend swaps, consistent counter reads).
    public func withDeviceLocked<T>(_ body: (any VirtioDevice) throws -> T) rethrows -> T {
        try state.withLock { _ in try body(device) }
    }

    /// Tells the driver that the device's configuration space changed (virtio 1.2, 4.2.3.3:
    /// a new generation and a configuration change interrupt), e.g. after a disk swap.
    public func configurationChanged() {
        let active = state.withLock { s -> Bool in
            s.configGeneration &+= 1
            return s.active
        }
        if active { interrupt.signal(VirtioInterrupt.configChange) }
    }

    private var selectedQueue: VirtQueue? {
        let index = Int(state.withLock { $0.queueSelect })
        return index < queues.count ? queues[index] : nil
    }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        if offset >= 0x100 {
            device.readConfig(offset: Int(offset - 0x100), into: data)
            return
        }
        guard data.count == 4 else {
            for i in data.indices { data[i] = 0 }
            return
        }
        let value: UInt32 = state.withLock { s in
            let queue = Int(s.queueSelect) < queues.count ? queues[Int(s.queueSelect)] : nil
            switch offset {
            case 0x000: return Self.magic
            case 0x004: return Self.version
            case 0x008: return device.deviceType.rawValue
            case 0x00C: return Self.vendorId
            case 0x010:
                let features = device.offeredFeatures
                return s.deviceFeaturesSelect == 0 ? UInt32(truncatingIfNeeded: features)
                    : s.deviceFeaturesSelect == 1 ? UInt32(truncatingIfNeeded: features >> 32) : 0
            case 0x034: return UInt32(queue?.maxSize ?? 0)
            case 0x044: return queue?.ready == true ? 1 : 0
            // The only interrupts of a device whose backend signals the irqfd itself are
            // used buffers and configuration changes: report the former on every read,
            // as nobody here saw it happen (Linux then checks each used ring).
            case 0x060: return interrupt.status | (s.doorbellsLent ? VirtioInterrupt.usedBuffer : 0)
            case 0x070: return s.status
            case 0x0B0, 0x0B4: return 0xFFFF_FFFF  // SHMLen: no shared memory region
            case 0x0FC: return s.configGeneration
            default: return 0
            }
        }
        data.storeBytes(of: value.littleEndian, as: UInt32.self)
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        if offset >= 0x100 {
            state.withLock { s in
                guard s.status & VirtioStatus.driverOk == 0 || s.active else { return }
                device.writeConfig(offset: Int(offset - 0x100), from: data)
            }
            return
        }
        guard data.count == 4 else { return }
        let value = UInt32(littleEndian: data.loadUnaligned(as: UInt32.self))
        if offset == Self.queueNotifyOffset {
            if Int(value) < notifiers.count { notifiers[Int(value)].signal() }
            return
        }
        state.withLock { s in
            let queue = Int(s.queueSelect) < queues.count ? queues[Int(s.queueSelect)] : nil
            // Queue and feature setup is only allowed before DRIVER_OK (and features before FEATURES_OK).
            let configuring = s.status & VirtioStatus.driverOk == 0
            let featuresOpen = configuring && s.status & VirtioStatus.featuresOk == 0
            switch offset {
            case 0x014: s.deviceFeaturesSelect = value
            case 0x020:
                guard featuresOpen else { return }
                switch s.driverFeaturesSelect {
                case 0: s.driverFeatures = (s.driverFeatures & ~0xFFFF_FFFF) | UInt64(value)
                case 1: s.driverFeatures = (s.driverFeatures & 0xFFFF_FFFF) | UInt64(value) << 32
                default: break
                }
            case 0x024: s.driverFeaturesSelect = value
            case 0x030: s.queueSelect = value
            case 0x038: if configuring, let queue { queue.size = UInt16(truncatingIfNeeded: min(value, 0x8000)) }
            case 0x044: if configuring, let queue { queue.ready = value == 1 }
            case 0x064: interrupt.acknowledge(value)
            case 0x070: setStatus(value, &s)
            case 0x080: if configuring, let queue { queue.descriptorTable = low(queue.descriptorTable, value) }
            case 0x084: if configuring, let queue { queue.descriptorTable = high(queue.descriptorTable, value) }
            case 0x090: if configuring, let queue { queue.availableRing = low(queue.availableRing, value) }
            case 0x094: if configuring, let queue { queue.availableRing = high(queue.availableRing, value) }
            case 0x0A0: if configuring, let queue { queue.usedRing = low(queue.usedRing, value) }
            case 0x0A4: if configuring, let queue { queue.usedRing = high(queue.usedRing, value) }
            default: break
            }
        }
    }

    private func low(_ old: UInt64, _ value: UInt32) -> UInt64 { (old & ~0xFFFF_FFFF) | UInt64(value) }
    private func high(_ old: UInt64, _ value: UInt32) -> UInt64 { (old & 0xFFFF_FFFF) | UInt64(value) << 32 }

    /// The status state machine (virtio 1.2, 3.1.1): 0 resets; bits are only added.
    private func setStatus(_ value: UInt32, _ s: inout State) {
        if value == 0 {
            resetLocked(&s)
            return
        }
        let added = value & ~s.status
        guard value & s.status == s.status else { return }  // the driver may not clear bits
        if added & VirtioStatus.featuresOk != 0 {
            let offered = device.offeredFeatures
            // Only features we offered, and virtio 1.x: anything else is not accepted.
            if s.driverFeatures & ~offered != 0 || s.driverFeatures & VirtioFeature.version1 == 0 {
                s.status = value & ~VirtioStatus.featuresOk
                return
            }
        }
        s.status = value
        if added & VirtioStatus.driverOk != 0 {
            guard s.status & VirtioStatus.featuresOk != 0, queues.allSatisfy({ !$0.ready || $0.isValid(memory: memory) }) else {
                fail(&s, because: "driver set DRIVER_OK with invalid features or queues")
                return
            }
            // Only queues the driver made ready and valid are ever touched; the others
            // stay inactive whatever a backend event asks of them.
            for queue in queues { queue.activate(features: s.driverFeatures, memory: memory) }
            failure.clear()
            do {
                try device.activate(VirtioDeviceContext(memory: memory, queues: queues, interrupt: interrupt,
                                                        features: s.driverFeatures, failure: failure))
                s.active = true
                lendDoorbells(&s)
            } catch {
                // The queues were activated for it: `fail` deactivates them with the rest.
                fail(&s, because: "activation failed: \(error)")
            }
        }
    }

    private func resetLocked(_ s: inout State) {
        if s.active { device.reset() }
        for queue in queues { queue.reset() }
        failure.clear()
        if s.status & VirtioStatus.deviceNeedsReset != 0 || s.doorbellsLent { watchDoorbells(true) }
        interrupt.clear()
        s = State(configGeneration: s.configGeneration)
    }
}
