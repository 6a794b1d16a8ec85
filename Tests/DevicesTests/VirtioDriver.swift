import Logging
import Testing
@testable import Devices
@testable import VMM

/// virtio-mmio register offsets (virtio 1.2, 4.2.2), named as Linux's
/// include/uapi/linux/virtio_mmio.h names them.
enum VirtioMmio {
    static let magicValue: UInt64 = 0x000
    static let version: UInt64 = 0x004
    static let deviceId: UInt64 = 0x008
    static let vendorId: UInt64 = 0x00C
    static let deviceFeatures: UInt64 = 0x010
    static let deviceFeaturesSel: UInt64 = 0x014
    static let driverFeatures: UInt64 = 0x020
    static let driverFeaturesSel: UInt64 = 0x024
    static let queueSel: UInt64 = 0x030
    static let queueNumMax: UInt64 = 0x034
    static let queueNum: UInt64 = 0x038
    static let queueReady: UInt64 = 0x044
    static let queueNotify: UInt64 = 0x050
    static let interruptStatus: UInt64 = 0x060
    static let interruptAck: UInt64 = 0x064
    static let status: UInt64 = 0x070
    static let queueDescLow: UInt64 = 0x080
    static let queueDescHigh: UInt64 = 0x084
    static let queueAvailLow: UInt64 = 0x090
    static let queueAvailHigh: UInt64 = 0x094
    static let queueUsedLow: UInt64 = 0x0A0
    static let queueUsedHigh: UInt64 = 0x0A4
    static let configGeneration: UInt64 = 0x0FC
    static let config: UInt64 = 0x100

    static let magic: UInt32 = 0x7472_6976  // "virt"
    /// Linux's VIRTIO_MMIO_VRING_ALIGN (PAGE_SIZE) for split rings.
    static let vringAlign: UInt64 = 4096
}

/// Split-ring descriptor flags (virtio 1.2, 2.7.5).
enum VirtqDesc {
    static let next: UInt16 = 1
    static let write: UInt16 = 2
    static let indirect: UInt16 = 4
}

/// VIRTQ_AVAIL_F_NO_INTERRUPT.
let virtqAvailNoInterrupt: UInt16 = 1

/// A logger that prints nothing: malformed requests are expected here, not news.
func quietLogger() -> Logger { Logger(label: "virtio-test") { _ in SwiftLogNoOpLogHandler() } }

/// Linux's vring_need_event().
func vringNeedEvent(_ event: UInt16, _ new: UInt16, _ old: UInt16) -> Bool {
    new &- event &- 1 < new &- old
}

/// One guest buffer of a request, as the driver sees it.
struct VirtioTestBuffer {
    var address: UInt64
    var length: UInt32
    var writable: Bool

    static func readable(_ address: UInt64, _ length: UInt32) -> Self { Self(address: address, length: length, writable: false) }
    static func writable(_ address: UInt64, _ length: UInt32) -> Self { Self(address: address, length: length, writable: true) }
}

/// Where the driver puts a queue's three areas.
enum VirtioRingLayout {
    /// What Linux's vring_create_virtqueue_split() does for virtio-mmio: one page-aligned
    /// block, the available ring right after the descriptor table, the used ring on the
    /// next page boundary.
    case linux
    /// The minimum alignments the specification asks for (16, 2, 4), packed tight.
    case tight
}

/// The driver side of one split virtqueue: the guest addresses and the shadow indices
/// that Linux keeps in `struct vring_virtqueue`.
struct VirtioTestQueue {
    let index: Int
    let size: UInt16
    let desc: UInt64
    let avail: UInt64
    let used: UInt64
    var free: [UInt16]
    /// avail_idx_shadow.
    var availIdx: UInt16 = 0
    /// last_used_idx.
    var lastUsedIdx: UInt16 = 0
    /// Entries added since the last kick (num_added).
    var added: UInt16 = 0
    /// The descriptors of each outstanding chain, to free when it is used.
    var chains: [UInt16: [UInt16]] = [:]

    var usedEventAddress: UInt64 { avail + 4 + 2 * UInt64(size) }
    var availEventAddress: UInt64 { used + 4 + 8 * UInt64(size) }
}

enum VirtioTestDriverError: Error, Equatable {
    case badMagic(UInt32)
    case badVersion(UInt32)
    case noDevice
    case featuresNotAccepted(status: UInt32)
    case queueUnavailable(Int)
    case queueAlreadySetUp(Int)
    case deviceNeedsReset(status: UInt32)
    case outOfDescriptors
}

/// Plays the guest driver against a real `VirtioMmioTransport` over real guest memory,
/// register access by register access as Linux's drivers/virtio/virtio_mmio.c,
/// virtio.c and virtio_ring.c (split rings) do. Queue notifications travel through the
/// transport's eventfds into a real `EventLoop` run on the test thread, or, with
/// `eventLoop: false`, are delivered by calling `notified(queue:)`.
final class VirtioTestDriver {
    static let defaultMemorySize: UInt64 = 16 << 20

    let memory: GuestMemory
    let device: any VirtioDevice
    let interrupt: VirtioInterrupt
    let transport: VirtioMmioTransport
    let loop: EventLoop?
    private(set) var queues: [Int: VirtioTestQueue] = [:]
    /// The features written to the device by the last negotiation.
    private(set) var features: UInt64 = 0
    /// Guest allocations grow up from 1 MiB (below is left for tests that craft memory).
    private var nextFree: UInt64 = 1 << 20

    /// `loop`: the loop the device itself watches its backend on (virtio-fs), if any.
    init(device: any VirtioDevice, memory: GuestMemory? = nil, eventLoop: Bool = true, loop existing: EventLoop? = nil,
         logger: Logger = quietLogger()) throws {
        self.memory = try memory ?? GuestMemory(ranges: X86MemoryLayout.ramRanges(size: Self.defaultMemorySize))
        self.device = device
        interrupt = VirtioInterrupt(eventFd: try EventFd())
        transport = try VirtioMmioTransport(device: device, memory: self.memory, interrupt: interrupt, logger: logger)
        if eventLoop {
            let loop = try existing ?? EventLoop()
            try transport.attach(to: loop)
            self.loop = loop
        } else {
            loop = nil
        }
    }

    // MARK: Registers (readl/writel)

    func read32(_ offset: UInt64) -> UInt32 {
        var value: UInt32 = 0
        withUnsafeMutableBytes(of: &value) { transport.read(offset: offset, data: $0) }
        return UInt32(littleEndian: value)
    }

    func write32(_ offset: UInt64, _ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { transport.write(offset: offset, data: $0) }
    }

    /// A device configuration space access of `width` bytes (virtio_cread8/16/32).
    func readConfig(_ offset: Int, width: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xEE, count: width)
        bytes.withUnsafeMutableBytes { transport.read(offset: VirtioMmio.config + UInt64(offset), data: $0) }
        return bytes
    }

    func writeConfig(_ offset: Int, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { transport.write(offset: VirtioMmio.config + UInt64(offset), data: $0) }
    }

    var status: UInt32 { read32(VirtioMmio.status) }
    var interruptStatus: UInt32 { read32(VirtioMmio.interruptStatus) }

    /// virtio_add_status(): get_status() | bit, written back.
    func addStatus(_ bit: UInt32) {
        write32(VirtioMmio.status, status | bit)
    }

    /// vm_reset(): write 0, then wait for the device to read back 0.
    func reset() {
        write32(VirtioMmio.status, 0)
        #expect(status == 0, "the device did not finish its reset")
        queues = [:]
    }

    // MARK: Probe and feature negotiation

    /// virtio_mmio_probe(): checks the magic, the version and that a device is there.
    @discardableResult
    func probe() throws -> (version: UInt32, deviceId: UInt32, vendor: UInt32) {
        let magic = read32(VirtioMmio.magicValue)
        guard magic == VirtioMmio.magic else { throw VirtioTestDriverError.badMagic(magic) }
        let version = read32(VirtioMmio.version)
        guard version == 1 || version == 2 else { throw VirtioTestDriverError.badVersion(version) }
        let deviceId = read32(VirtioMmio.deviceId)
        guard deviceId != 0 else { throw VirtioTestDriverError.noDevice }
        return (version, deviceId, read32(VirtioMmio.vendorId))
    }

    /// vm_get_features(): the high half first, then the low half.
    func deviceFeatures() -> UInt64 {
        write32(VirtioMmio.deviceFeaturesSel, 1)
        var features = UInt64(read32(VirtioMmio.deviceFeatures)) << 32
        write32(VirtioMmio.deviceFeaturesSel, 0)
        features |= UInt64(read32(VirtioMmio.deviceFeatures))
        return features
    }

    /// vm_finalize_features(): the high half first, then the low half (or the other
    /// order, to check the halves are independent).
    func writeDriverFeatures(_ features: UInt64, highFirst: Bool = true) {
        let halves: [UInt32] = highFirst ? [1, 0] : [0, 1]
        for half in halves {
            write32(VirtioMmio.driverFeaturesSel, half)
            write32(VirtioMmio.driverFeatures, UInt32(truncatingIfNeeded: features >> (32 * UInt64(half))))
        }
        self.features = features
    }

    /// register_virtio_device() + virtio_dev_probe() up to virtio_features_ok(): reset,
    /// ACKNOWLEDGE, DRIVER, read the device's features, write `driverFeatures` as they
    /// are, set FEATURES_OK and read the status back. Returns whether FEATURES_OK stuck.
    func negotiate(driverFeatures: UInt64, highFirst: Bool = true) -> Bool {
        reset()
        addStatus(VirtioStatus.acknowledge)
        addStatus(VirtioStatus.driver)
        _ = deviceFeatures()
        writeDriverFeatures(driverFeatures, highFirst: highFirst)
        addStatus(VirtioStatus.featuresOk)
        return status & VirtioStatus.featuresOk != 0
    }

    // MARK: Queues

    /// Bump allocation of guest memory, zeroed.
    func allocate(_ size: Int, align: UInt64 = 16) -> UInt64 {
        let address = (nextFree + align - 1) & ~(align - 1)
        nextFree = address + UInt64(size)
        precondition(nextFree <= memory.totalSize, "test guest memory exhausted")
        try! memory.zero(at: address, length: size)
        return address
    }

    /// Writes the queue registers the way vm_setup_vq() does, with whatever values.
    func configureQueue(_ index: Int, size: UInt32, desc: UInt64, avail: UInt64, used: UInt64, ready: Bool = true) {
        write32(VirtioMmio.queueSel, UInt32(index))
        write32(VirtioMmio.queueNum, size)
        write32(VirtioMmio.queueDescLow, UInt32(truncatingIfNeeded: desc))
        write32(VirtioMmio.queueDescHigh, UInt32(truncatingIfNeeded: desc >> 32))
        write32(VirtioMmio.queueAvailLow, UInt32(truncatingIfNeeded: avail))
        write32(VirtioMmio.queueAvailHigh, UInt32(truncatingIfNeeded: avail >> 32))
        write32(VirtioMmio.queueUsedLow, UInt32(truncatingIfNeeded: used))
        write32(VirtioMmio.queueUsedHigh, UInt32(truncatingIfNeeded: used >> 32))
        if ready { write32(VirtioMmio.queueReady, 1) }
    }

    /// vm_setup_vq(): select the queue, check it is not live yet, read its maximum size,
    /// lay out the rings in guest memory and hand their addresses to the device.
    @discardableResult
    func setUpQueue(_ index: Int, size: UInt16? = nil, layout: VirtioRingLayout = .linux) throws -> VirtioTestQueue {
        write32(VirtioMmio.queueSel, UInt32(index))
        guard read32(VirtioMmio.queueReady) == 0 else { throw VirtioTestDriverError.queueAlreadySetUp(index) }
        let max = read32(VirtioMmio.queueNumMax)
        guard max != 0 else { throw VirtioTestDriverError.queueUnavailable(index) }
        let num = size ?? UInt16(min(max, 0x8000))
        let n = UInt64(num)
        let desc: UInt64, avail: UInt64, used: UInt64
        switch layout {
        case .linux:
            let align = VirtioMmio.vringAlign
            let usedOffset = (16 * n + 6 + 2 * n + align - 1) & ~(align - 1)
            desc = allocate(Int(usedOffset + 6 + 8 * n), align: align)
            avail = desc + 16 * n
            used = desc + usedOffset
        case .tight:
            desc = allocate(Int(16 * n), align: 16)
            avail = allocate(Int(6 + 2 * n), align: 2)
            used = allocate(Int(6 + 8 * n), align: 4)
        }
        return setUpQueue(index, size: num, desc: desc, avail: avail, used: used)
    }

    /// Hands rings the caller placed itself to the device, and tracks them.
    @discardableResult
    func setUpQueue(_ index: Int, size: UInt16, desc: UInt64, avail: UInt64, used: UInt64) -> VirtioTestQueue {
        configureQueue(index, size: UInt32(size), desc: desc, avail: avail, used: used)
        let queue = VirtioTestQueue(index: index, size: size, desc: desc, avail: avail, used: used,
                                    free: Array(0..<size))
        queues[index] = queue
        return queue
    }

    /// The whole of Linux's bring-up: probe, negotiate (the driver's wishes masked by
    /// what the device offers), set up every queue, DRIVER_OK.
    func initialize(features wanted: UInt64? = nil, queueSize: UInt16? = nil, layout: VirtioRingLayout = .linux) throws {
        try probe()
        reset()
        addStatus(VirtioStatus.acknowledge)
        addStatus(VirtioStatus.driver)
        let offered = deviceFeatures()
        writeDriverFeatures((wanted ?? offered) & offered)
        addStatus(VirtioStatus.featuresOk)
        guard status & VirtioStatus.featuresOk != 0 else {
            addStatus(VirtioStatus.failed)
            throw VirtioTestDriverError.featuresNotAccepted(status: status)
        }
        for index in device.queueMaxSizes.indices {
            try setUpQueue(index, size: queueSize, layout: layout)
        }
        driverOk()
        guard status & VirtioStatus.deviceNeedsReset == 0 else {
            throw VirtioTestDriverError.deviceNeedsReset(status: status)
        }
    }

    /// The bring-up up to FEATURES_OK, taking every offered feature: for tests that set up
    /// the queues themselves (or do something before DRIVER_OK).
    func negotiateEveryFeature() throws {
        try probe()
        reset()
        addStatus(VirtioStatus.acknowledge)
        addStatus(VirtioStatus.driver)
        writeDriverFeatures(deviceFeatures())
        addStatus(VirtioStatus.featuresOk)
    }

    /// virtio_device_ready().
    func driverOk() { addStatus(VirtioStatus.driverOk) }

    func queue(_ index: Int) -> VirtioTestQueue { queues[index]! }

    var eventIndex: Bool { features & VirtioFeature.ringEventIndex != 0 }

    // MARK: Building requests

    func writeDescriptor(table: UInt64, index: UInt16, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
        let at = table + 16 * UInt64(index)
        try! memory.store(address, at: at)
        try! memory.store(length, at: at + 8)
        try! memory.store(flags, at: at + 12)
        try! memory.store(next, at: at + 14)
    }

    /// Writes `buffers` as a chain linked by NEXT, readable ones first as the caller
    /// ordered them, into `table` at `indices`.
    func writeChain(table: UInt64, indices: [UInt16], _ buffers: [VirtioTestBuffer]) {
        for (i, buffer) in buffers.enumerated() {
            let last = i == buffers.count - 1
            writeDescriptor(table: table, index: indices[i], address: buffer.address, length: buffer.length,
                            flags: (buffer.writable ? VirtqDesc.write : 0) | (last ? 0 : VirtqDesc.next),
                            next: last ? 0 : indices[i + 1])
        }
    }

    private func takeDescriptors(_ q: Int, _ count: Int, at indices: [UInt16]?) throws -> [UInt16] {
        var queue = queues[q]!
        let taken: [UInt16]
        if let indices {
            taken = indices
            queue.free.removeAll { indices.contains($0) }
        } else {
            guard queue.free.count >= count else { throw VirtioTestDriverError.outOfDescriptors }
            taken = Array(queue.free.prefix(count))
            queue.free.removeFirst(count)
        }
        queue.chains[taken[0]] = taken
        queues[q] = queue
        return taken
    }

    /// virtqueue_add_split() without indirect descriptors: one descriptor per buffer from
    /// the free list (or at the given `indices`, to scatter a chain across the table),
    /// then published. Returns the head.
    @discardableResult
    func add(_ buffers: [VirtioTestBuffer], queue q: Int = 0, at indices: [UInt16]? = nil, publish: Bool = true) throws -> UInt16 {
        let slots = try takeDescriptors(q, buffers.count, at: indices)
        writeChain(table: queues[q]!.desc, indices: slots, buffers)
        if publish { self.publish(head: slots[0], queue: q) }
        return slots[0]
    }

    /// virtqueue_add_split() with an indirect table (what Linux does for more than one
    /// buffer when VIRTIO_F_INDIRECT_DESC is negotiated): the buffers go into a table of
    /// their own and a single INDIRECT descriptor points at it.
    @discardableResult
    func addIndirect(_ buffers: [VirtioTestBuffer], queue q: Int = 0, publish: Bool = true) throws -> UInt16 {
        let table = allocate(16 * buffers.count, align: 16)
        writeChain(table: table, indices: (0..<UInt16(buffers.count)).map { $0 }, buffers)
        let slots = try takeDescriptors(q, 1, at: nil)
        writeDescriptor(table: queues[q]!.desc, index: slots[0], address: table, length: UInt32(16 * buffers.count),
                        flags: VirtqDesc.indirect, next: 0)
        if publish { self.publish(head: slots[0], queue: q) }
        return slots[0]
    }

    /// Puts `head` in the next available slot and publishes the new index (Linux writes
    /// avail->idx after each add, behind a write barrier).
    func publish(head: UInt16, queue q: Int = 0) {
        var queue = queues[q]!
        try! memory.store(head, at: queue.avail + 4 + 2 * UInt64(queue.availIdx % queue.size))
        queue.availIdx &+= 1
        queue.added &+= 1
        try! memory.store(queue.availIdx, at: queue.avail + 2)
        queues[q] = queue
    }

    /// Writes avail->idx directly (a driver gone wrong).
    func setAvailIndex(_ value: UInt16, queue q: Int = 0) {
        var queue = queues[q]!
        queue.availIdx = value
        try! memory.store(value, at: queue.avail + 2)
        queues[q] = queue
    }

    func setAvailFlags(_ flags: UInt16, queue q: Int = 0) { try! memory.store(flags, at: queues[q]!.avail) }
    func setUsedEvent(_ value: UInt16, queue q: Int = 0) { try! memory.store(value, at: queues[q]!.usedEventAddress) }
    func availEvent(_ q: Int = 0) -> UInt16 { try! memory.load(UInt16.self, at: queues[q]!.availEventAddress) }

    // MARK: Notifying and running the device

    /// virtqueue_kick_prepare_split() + virtqueue_notify(): notifies only when the device
    /// asked for it (avail_event with EVENT_IDX, else VRING_USED_F_NO_NOTIFY clear).
    @discardableResult
    func kick(_ q: Int = 0) -> Bool {
        var queue = queues[q]!
        let new = queue.availIdx
        let old = new &- queue.added
        queue.added = 0
        queues[q] = queue
        let needsKick: Bool
        if eventIndex {
            needsKick = vringNeedEvent(availEvent(q), new, old)
        } else {
            needsKick = (try! memory.load(UInt16.self, at: queue.used)) & 1 == 0
        }
        if needsKick { notify(q) }
        return needsKick
    }

    /// vm_notify(): the queue index to QueueNotify; then the device runs.
    @discardableResult
    func notify(_ q: Int = 0) -> Int {
        write32(VirtioMmio.queueNotify, UInt32(q))
        return runDevice()
    }

    /// Lets the device handle every pending doorbell: the event loop dispatches the
    /// ready eventfds (they are ready already, so no waiting), or the notifiers are
    /// drained by hand. Returns the number of doorbells handled.
    @discardableResult
    func runDevice() -> Int {
        var handled = 0
        if let loop {
            while true {
                let n = loop.runOnce(timeoutMs: 0)
                if n == 0 { break }
                handled += n
            }
        } else {
            for (index, notifier) in transport.notifiers.enumerated() where notifier.consume() != nil {
                transport.notified(queue: index)
                handled += 1
            }
            if transport.failure.hasFailed {
                transport.failureReported()
                handled += 1
            }
        }
        return handled
    }

    // MARK: Used ring and interrupts

    func usedIdx(_ q: Int = 0) -> UInt16 { try! memory.load(UInt16.self, at: queues[q]!.used + 2) }

    func usedElement(_ q: Int = 0, slot: UInt16) -> (id: UInt32, len: UInt32) {
        let queue = queues[q]!
        let at = queue.used + 4 + 8 * UInt64(slot % queue.size)
        return (try! memory.load(UInt32.self, at: at), try! memory.load(UInt32.self, at: at + 4))
    }

    /// virtqueue_get_buf_ctx_split() until the ring is empty: each used element, its
    /// descriptors freed; with EVENT_IDX, used_event follows last_used_idx (unless
    /// interrupts are off), as Linux does.
    func getUsed(_ q: Int = 0) -> [(id: UInt32, len: UInt32)] {
        var queue = queues[q]!
        var result: [(id: UInt32, len: UInt32)] = []
        let usedIndex = usedIdx(q)
        while queue.lastUsedIdx != usedIndex {
            let element = usedElement(q, slot: queue.lastUsedIdx)
            result.append(element)
            if element.id < UInt32(queue.size), let chain = queue.chains.removeValue(forKey: UInt16(element.id)) {
                queue.free.append(contentsOf: chain)
            }
            queue.lastUsedIdx &+= 1
            if eventIndex, (try! memory.load(UInt16.self, at: queue.avail)) & virtqAvailNoInterrupt == 0 {
                try! memory.store(queue.lastUsedIdx, at: queue.usedEventAddress)
            }
        }
        queues[q] = queue
        return result
    }

    /// Interrupt edges the device sent through its irqfd since the last call (0 if none).
    func interrupts() -> UInt64 { interrupt.eventFd.consume() ?? 0 }

    /// vm_interrupt(): read InterruptStatus, acknowledge what was read, return it.
    @discardableResult
    func handleInterrupt() -> UInt32 {
        let bits = interruptStatus
        write32(VirtioMmio.interruptAck, bits)
        return bits
    }

    // MARK: Memory helpers

    func fill(_ address: UInt64, _ length: Int, with byte: UInt8) {
        try! memory.write([UInt8](repeating: byte, count: length), at: address)
    }

    func bytes(_ address: UInt64, _ length: Int) -> [UInt8] { try! memory.read(at: address, length: length) }
}

/// A device model that records what the transport asks of it, for tests of the
/// transport alone.
final class VirtioRecordingDevice: VirtioDevice, @unchecked Sendable {  // test double: the flags are set while no driver runs, `config` changes under the transport's lock
    struct Failure: Error {}

    let deviceType: VirtioDeviceType
    let queueMaxSizes: [UInt16]
    let offeredFeatures: UInt64
    var config: [UInt8]
    var failProcessing = false
    var failActivation = false
    let activations = Recorder<VirtioDeviceContext>()
    let processed = Recorder<Int>()
    let resets = Recorder<Bool>()
    let configWrites = Recorder<[Int]>()

    init(type: VirtioDeviceType = .block, queueMaxSizes: [UInt16] = [128, 64],
         offeredFeatures: UInt64 = VirtioFeature.version1 | VirtioFeature.ringEventIndex | VirtioFeature.ringIndirectDescriptors,
         config: [UInt8] = []) {
        deviceType = type
        self.queueMaxSizes = queueMaxSizes
        self.offeredFeatures = offeredFeatures
        self.config = config
    }

    func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        readConfig(config, offset: offset, into: data)
    }

    func writeConfig(offset: Int, from data: UnsafeRawBufferPointer) {
        configWrites.record([offset] + data.map { Int($0) })
        for (i, byte) in data.enumerated() where offset + i < config.count { config[offset + i] = byte }
    }

    func activate(_ context: VirtioDeviceContext) throws {
        activations.record(context)
        if failActivation { throw Failure() }
    }

    func process(queue index: Int) throws {
        processed.record(index)
        if failProcessing { throw Failure() }
    }

    func reset() { resets.record(true) }
}
