import Testing
@testable import Devices
@testable import VMM

/// The virtio-mmio transport through its registers, as Linux's virtio_mmio.c uses them.
@Suite struct VirtioMmioTransportTests {
    static let ackDriver = VirtioStatus.acknowledge | VirtioStatus.driver

    func rngDriver(eventLoop: Bool = true) throws -> (VirtioTestDriver, VirtioRng) {
        let rng = try VirtioRng(logger: quietLogger())
        return (try VirtioTestDriver(device: rng, eventLoop: eventLoop), rng)
    }

    /// Makes one 16-byte random request and checks the device answered it.
    func expectServes(_ d: VirtioTestDriver, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let buffer = d.allocate(16)
        let head = try d.add([.writable(buffer, 16)])
        let before = d.usedIdx()
        d.notify()
        #expect(d.usedIdx() == before &+ 1, sourceLocation: sourceLocation)
        let used = d.getUsed()
        #expect(used.count == 1 && used.first?.id == UInt32(head) && used.first?.len == 16, sourceLocation: sourceLocation)
    }

    // MARK: Identification

    @Test func registersIdentifyAVersion2RngDevice() throws {
        let (d, _) = try rngDriver()
        let probed = try d.probe()
        #expect(probed.version == 2)
        #expect(probed.deviceId == 4)
        #expect(probed.vendor == 0x5354_414B)
        var magic = [UInt8](repeating: 0, count: 4)
        magic.withUnsafeMutableBytes { d.transport.read(offset: VirtioMmio.magicValue, data: $0) }
        #expect(magic == Array("virt".utf8))  // little-endian 0x74726976
        #expect(d.read32(VirtioMmio.configGeneration) == 0)
        #expect(d.status == 0)
        #expect(d.interruptStatus == 0)
        d.write32(VirtioMmio.queueSel, 0)
        #expect(d.read32(VirtioMmio.queueNumMax) == 256)
        #expect(d.read32(VirtioMmio.queueReady) == 0)
        d.write32(VirtioMmio.queueSel, 1)  // virtio-rng has one queue
        #expect(d.read32(VirtioMmio.queueNumMax) == 0)
        // virtio-rng has no configuration space: it reads as zeros, whatever the width.
        #expect(d.readConfig(0, width: 1) == [0])
        #expect(d.readConfig(0, width: 4) == [0, 0, 0, 0])
        #expect(d.readConfig(0xFC, width: 4) == [0, 0, 0, 0])
    }

    @Test func blockDeviceIdAndQueueMaxima() throws {
        let device = VirtioRecordingDevice(type: .block, queueMaxSizes: [128, 64])
        let d = try VirtioTestDriver(device: device)
        #expect(try d.probe().deviceId == 2)
        for (index, max) in [(0, 128), (1, 64), (2, 0), (0xFFFF_FFFF, 0)] {
            d.write32(VirtioMmio.queueSel, UInt32(index))
            #expect(d.read32(VirtioMmio.queueNumMax) == UInt32(max))
        }
    }

    @Test func registerAccessesOfOtherWidthsAreIgnored() throws {
        let (d, _) = try rngDriver()
        var half: UInt16 = 0xFFFF
        withUnsafeMutableBytes(of: &half) { d.transport.read(offset: VirtioMmio.magicValue, data: $0) }
        #expect(half == 0)
        var byte: UInt8 = 0xFF
        withUnsafeMutableBytes(of: &byte) { d.transport.read(offset: VirtioMmio.version, data: $0) }
        #expect(byte == 0)
        withUnsafeBytes(of: UInt16(VirtioStatus.acknowledge)) { d.transport.write(offset: VirtioMmio.status, data: $0) }
        withUnsafeBytes(of: UInt8(VirtioStatus.acknowledge)) { d.transport.write(offset: VirtioMmio.status, data: $0) }
        #expect(d.status == 0)
    }

    // MARK: Features

    @Test func rngOffersVersion1IndirectAndEventIndex() throws {
        let (d, _) = try rngDriver()
        d.write32(VirtioMmio.deviceFeaturesSel, 0)
        #expect(d.read32(VirtioMmio.deviceFeatures) == 0x3000_0000)
        d.write32(VirtioMmio.deviceFeaturesSel, 1)
        #expect(d.read32(VirtioMmio.deviceFeatures) == 0x1)
        d.write32(VirtioMmio.deviceFeaturesSel, 2)
        #expect(d.read32(VirtioMmio.deviceFeatures) == 0)
        #expect(d.deviceFeatures() == VirtioFeature.version1 | VirtioFeature.ringIndirectDescriptors | VirtioFeature.ringEventIndex)
    }

    @Test(arguments: [true, false])
    func featureNegotiationUsesBothHalves(highFirst: Bool) throws {
        let offered: UInt64 = 1 << 0 | 1 << 5 | VirtioFeature.ringIndirectDescriptors | VirtioFeature.ringEventIndex
            | VirtioFeature.version1 | 1 << 35 | 1 << 63
        let device = VirtioRecordingDevice(offeredFeatures: offered)
        let d = try VirtioTestDriver(device: device)
        #expect(d.deviceFeatures() == offered)
        let chosen: UInt64 = 1 << 5 | VirtioFeature.ringEventIndex | VirtioFeature.version1 | 1 << 35
        #expect(d.negotiate(driverFeatures: chosen, highFirst: highFirst))
        #expect(d.status == Self.ackDriver | VirtioStatus.featuresOk)
        try d.setUpQueue(0)
        try d.setUpQueue(1)
        d.driverOk()
        #expect(d.status == Self.ackDriver | VirtioStatus.featuresOk | VirtioStatus.driverOk)
        #expect(d.transport.isActive)
        let context = try #require(device.activations.all.last)
        #expect(context.features == chosen)
        #expect(context.queues.map(\.size) == [128, 64])
        #expect(context.queues.allSatisfy { $0.eventIndex && !$0.indirectDescriptors })
        #expect(context.queues[0].descriptorTable == d.queue(0).desc)
        #expect(context.queues[1].usedRing == d.queue(1).used)
    }

    enum RefusedFeatures: String, CaseIterable, CustomTestStringConvertible {
        case notOfferedLowHalf, notOfferedHighHalf, withoutVersion1, nothingAtAll
        var testDescription: String { rawValue }
        var features: UInt64 {
            switch self {
            case .notOfferedLowHalf: return VirtioFeature.version1 | 1 << 0
            case .notOfferedHighHalf: return VirtioFeature.version1 | 1 << 33  // VIRTIO_F_ACCESS_PLATFORM
            case .withoutVersion1: return VirtioFeature.ringIndirectDescriptors  // a legacy driver
            case .nothingAtAll: return 0
            }
        }
    }

    @Test(arguments: RefusedFeatures.allCases)
    func featuresOkIsRefused(_ refused: RefusedFeatures) throws {
        let (d, _) = try rngDriver()
        #expect(!d.negotiate(driverFeatures: refused.features))
        #expect(d.status == Self.ackDriver)
        // virtio_features_ok() fails the probe: Linux adds FAILED.
        d.addStatus(VirtioStatus.failed)
        #expect(d.status == Self.ackDriver | VirtioStatus.failed)
        #expect(!d.transport.isActive)
        // A fresh start with acceptable features works.
        try d.initialize()
        try expectServes(d)
    }

    @Test func refusedFeaturesCanBeRenegotiatedBeforeFeaturesOk() throws {
        let (d, _) = try rngDriver()
        #expect(!d.negotiate(driverFeatures: VirtioFeature.version1 | 1))
        d.writeDriverFeatures(VirtioFeature.version1)
        d.addStatus(VirtioStatus.featuresOk)
        #expect(d.status == Self.ackDriver | VirtioStatus.featuresOk)
    }

    @Test func driverFeaturesAreFrozenAtFeaturesOk() throws {
        let device = VirtioRecordingDevice()
        let d = try VirtioTestDriver(device: device)
        #expect(d.negotiate(driverFeatures: VirtioFeature.version1))
        d.write32(VirtioMmio.driverFeaturesSel, 0)
        d.write32(VirtioMmio.driverFeatures, UInt32(truncatingIfNeeded: VirtioFeature.ringEventIndex))
        d.write32(VirtioMmio.driverFeaturesSel, 1)
        d.write32(VirtioMmio.driverFeatures, 0)
        try d.setUpQueue(0)
        d.driverOk()
        #expect(device.activations.all.last?.features == VirtioFeature.version1)
        #expect(device.activations.all.last?.queues[0].eventIndex == false)
    }

    @Test func driverOkWithoutFeaturesOkNeedsReset() throws {
        let (d, _) = try rngDriver()
        d.reset()
        d.addStatus(VirtioStatus.acknowledge)
        d.addStatus(VirtioStatus.driver)
        d.writeDriverFeatures(VirtioFeature.version1)
        try d.setUpQueue(0)
        _ = d.interrupts()
        d.driverOk()
        #expect(d.status & VirtioStatus.deviceNeedsReset != 0)
        #expect(!d.transport.isActive)
        #expect(d.interruptStatus == VirtioInterrupt.configChange)
        #expect(d.interrupts() == 1)
    }

    // MARK: Status

    @Test func statusBitsCanOnlyBeAddedOrResetToZero() throws {
        let (d, _) = try rngDriver()
        d.write32(VirtioMmio.status, VirtioStatus.acknowledge)
        d.write32(VirtioMmio.status, Self.ackDriver)
        #expect(d.status == Self.ackDriver)
        d.write32(VirtioMmio.status, VirtioStatus.acknowledge)  // would clear DRIVER
        #expect(d.status == Self.ackDriver)
        d.write32(VirtioMmio.status, VirtioStatus.driver | VirtioStatus.featuresOk)  // would clear ACKNOWLEDGE
        #expect(d.status == Self.ackDriver)
        d.write32(VirtioMmio.status, 0)
        #expect(d.status == 0)

        try d.initialize()
        let live = d.status
        d.write32(VirtioMmio.status, live & ~VirtioStatus.driverOk)
        #expect(d.status == live)
        #expect(d.transport.isActive)
        try expectServes(d)
    }

    @Test func resetClearsQueuesAndInterruptStatus() throws {
        let (d, rng) = try rngDriver()
        try d.initialize()
        let old = d.queue(0)
        try expectServes(d)
        #expect(d.interruptStatus == VirtioInterrupt.usedBuffer)  // not acknowledged
        #expect(d.interrupts() == 1)

        d.reset()
        #expect(d.status == 0)
        #expect(d.interruptStatus == 0)
        #expect(!d.transport.isActive)
        d.write32(VirtioMmio.queueSel, 0)
        #expect(d.read32(VirtioMmio.queueReady) == 0)
        #expect(d.read32(VirtioMmio.queueNumMax) == 256)

        // The old rings are dead: a request left there is not touched.
        let stale = d.allocate(16)
        try d.memory.store(UInt64(stale), at: old.desc + 16 * 5)
        try d.memory.store(UInt32(16), at: old.desc + 16 * 5 + 8)
        try d.memory.store(VirtqDesc.write, at: old.desc + 16 * 5 + 12)
        try d.memory.store(UInt16(5), at: old.avail + 4 + 2)
        try d.memory.store(UInt16(2), at: old.avail + 2)
        d.write32(VirtioMmio.queueNotify, 0)
        d.runDevice()
        #expect(try d.memory.load(UInt16.self, at: old.used + 2) == 1)
        #expect(d.bytes(stale, 16) == [UInt8](repeating: 0, count: 16))
        #expect(d.interrupts() == 0)

        // A new bring-up starts the queue from index 0 on new rings.
        try d.initialize()
        #expect(d.queue(0).desc != old.desc)
        try expectServes(d)
        #expect(d.usedIdx() == 1)
        #expect(rng.bytesServed == 32)
    }

    @Test func resetOfAnActiveDeviceResetsTheModel() throws {
        let device = VirtioRecordingDevice()
        let d = try VirtioTestDriver(device: device)
        d.reset()
        #expect(device.resets.count == 0)  // never activated
        try d.initialize()
        #expect(device.activations.count == 1)
        d.reset()
        #expect(device.resets.count == 1)
        try d.initialize()
        #expect(device.activations.count == 2)
    }

    // MARK: Queue configuration

    enum BadQueue: String, CaseIterable, CustomTestStringConvertible {
        case sizeNotPowerOfTwo, sizeAboveMaximum, sizeZero, sizeAbove32K
        case descriptorTableMisaligned, availableRingMisaligned, usedRingMisaligned
        case descriptorTableOutsideMemory, availableRingCrossesEndOfMemory, usedRingCrossesEndOfMemory
        case usedRingAbove4GiB, descriptorTableAddressWraps
        var testDescription: String { rawValue }
    }

    @Test(arguments: BadQueue.allCases)
    func invalidQueueAtDriverOkNeedsReset(_ bad: BadQueue) throws {
        let (d, rng) = try rngDriver()
        #expect(d.negotiate(driverFeatures: d.deviceFeatures()))
        let good = try d.setUpQueue(0)  // a valid layout, then spoiled
        var size: UInt32 = 256
        var (desc, avail, used) = (good.desc, good.avail, good.used)
        let end = d.memory.totalSize
        switch bad {
        case .sizeNotPowerOfTwo: size = 3
        case .sizeAboveMaximum: size = 512
        case .sizeZero: size = 0
        case .sizeAbove32K: size = 0x1_0000
        case .descriptorTableMisaligned: desc += 8
        case .availableRingMisaligned: avail += 1
        case .usedRingMisaligned: used += 2
        case .descriptorTableOutsideMemory: desc = end
        case .availableRingCrossesEndOfMemory: avail = end - 6 - 2 * 256 + 2
        case .usedRingCrossesEndOfMemory: used = end - 2052  // 4-aligned, 2 bytes short of 6 + 8 * 256
        case .usedRingAbove4GiB: used |= 1 << 32
        case .descriptorTableAddressWraps: desc = 0xFFFF_FFFF_FFFF_F000
        }
        d.configureQueue(0, size: size, desc: desc, avail: avail, used: used)
        #expect(d.read32(VirtioMmio.queueReady) == 1)
        _ = d.interrupts()
        d.driverOk()
        #expect(d.status & VirtioStatus.deviceNeedsReset != 0)
        #expect(d.status & VirtioStatus.driverOk != 0)
        #expect(!d.transport.isActive)
        #expect(d.interrupts() == 1)
        #expect(d.handleInterrupt() == VirtioInterrupt.configChange)
        // Notifications go nowhere until the driver resets the device.
        d.write32(VirtioMmio.queueNotify, 0)
        d.runDevice()
        #expect(rng.bytesServed == 0)
        #expect(d.interrupts() == 0)
        try d.initialize()
        try expectServes(d)
    }

    @Test func boundaryQueueLayoutsAreAccepted() throws {
        // The smallest alignments the specification allows, right at the end of RAM.
        let (d, _) = try rngDriver()
        #expect(d.negotiate(driverFeatures: d.deviceFeatures()))
        let n: UInt64 = 8
        let end = d.memory.totalSize
        let used = end - (6 + 8 * n) - 6  // 4-aligned only (≡ 4 mod 8), 6 bytes short of the end of RAM
        let avail = used - (6 + 2 * n)  // 2-aligned only (≡ 2 mod 4), ending where the used ring starts
        let desc = (avail - 16 * n) & ~15
        #expect(used % 4 == 0 && used % 8 != 0 && avail % 4 == 2)
        d.setUpQueue(0, size: UInt16(n), desc: desc, avail: avail, used: used)
        d.driverOk()
        #expect(d.status & VirtioStatus.deviceNeedsReset == 0)
        #expect(d.transport.isActive)
        for _ in 0..<12 { try expectServes(d) }
    }

    @Test func tightLayoutServesRequests() throws {
        let (d, _) = try rngDriver()
        try d.initialize(queueSize: 4, layout: .tight)
        for _ in 0..<10 { try expectServes(d) }  // the ring wraps twice
        #expect(d.usedIdx() == 10)
    }

    @Test func queueRegistersAreIgnoredAfterDriverOk() throws {
        let (d, _) = try rngDriver()
        try d.initialize(queueSize: 16)
        let q = d.queue(0)
        let elsewhere = d.allocate(0x4000, align: 4096)
        d.configureQueue(0, size: 8, desc: elsewhere, avail: elsewhere + 0x1000, used: elsewhere + 0x2000, ready: false)
        d.write32(VirtioMmio.queueReady, 0)
        #expect(d.read32(VirtioMmio.queueReady) == 1)
        for _ in 0..<20 { try expectServes(d) }  // size 16 still: slots 16...19 wrap to 0...3
        #expect(d.usedIdx() == 20)
        #expect(try d.memory.load(UInt16.self, at: elsewhere + 0x2000 + 2) == 0)
        #expect(d.queue(0).used == q.used)
    }

    @Test func queueSelectOutOfRangeIsHarmless() throws {
        let (d, _) = try rngDriver()
        #expect(d.negotiate(driverFeatures: d.deviceFeatures()))
        d.configureQueue(3, size: 16, desc: 0x1000, avail: 0x2000, used: 0x3000)
        #expect(d.read32(VirtioMmio.queueReady) == 0)
        #expect(d.read32(VirtioMmio.queueNumMax) == 0)
        #expect(throws: VirtioTestDriverError.self) { try d.setUpQueue(3) }
        try d.setUpQueue(0)
        d.driverOk()
        #expect(d.transport.isActive)
        try expectServes(d)
    }

    // MARK: Notifications

    @Test(arguments: [true, false])
    func notificationsBeforeDriverOkDoNothing(eventLoop: Bool) throws {
        let (d, rng) = try rngDriver(eventLoop: eventLoop)
        #expect(d.negotiate(driverFeatures: d.deviceFeatures()))
        try d.setUpQueue(0, size: 8)
        let buffer = d.allocate(32)
        let head = try d.add([.writable(buffer, 32)])
        #expect(d.notify() == 1)  // the doorbell rang and was handled...
        #expect(d.usedIdx() == 0)  // ...but the device is not live
        #expect(d.bytes(buffer, 32) == [UInt8](repeating: 0, count: 32))
        #expect(d.interrupts() == 0)
        #expect(rng.bytesServed == 0)

        d.driverOk()
        #expect(d.usedIdx() == 0)  // DRIVER_OK alone processes nothing
        d.notify()
        #expect(d.getUsed().map { [$0.id, $0.len] } == [[UInt32(head), 32]])
        #expect(d.interrupts() == 1)
    }

    @Test func notificationOfAnUnknownQueueIsIgnored() throws {
        let device = VirtioRecordingDevice(queueMaxSizes: [16])
        let d = try VirtioTestDriver(device: device)
        try d.initialize()
        for index: UInt32 in [1, 2, 0xFFFF, 0xFFFF_FFFF] {
            d.write32(VirtioMmio.queueNotify, index)
        }
        #expect(d.runDevice() == 0)
        #expect(device.processed.count == 0)
        d.notify(0)
        #expect(device.processed.all == [0])
    }

    @Test func eachQueueHasItsOwnDoorbell() throws {
        let device = VirtioRecordingDevice(queueMaxSizes: [16, 16, 16])
        let d = try VirtioTestDriver(device: device)
        try d.initialize()
        #expect(d.transport.notifiers.count == 3)
        d.write32(VirtioMmio.queueNotify, 2)
        d.write32(VirtioMmio.queueNotify, 2)  // an eventfd coalesces
        d.write32(VirtioMmio.queueNotify, 0)
        d.runDevice()
        #expect(device.processed.all.sorted() == [0, 2])
        // KVM's ioeventfd signals the same eventfd without a QueueNotify exit.
        d.transport.notifiers[1].signal()
        d.runDevice()
        #expect(device.processed.all.sorted() == [0, 1, 2])
    }

    @Test func notifyingAQueueTheDriverNeverEnabledDoesNothing() throws {
        // The driver sets DRIVER_OK without ever enabling queue 0 (allowed: a driver may
        // leave queues unused), then rings its doorbell. The queue's registers still hold
        // their reset values (rings at guest address 0): the device must not use them.
        let (d, rng) = try rngDriver()
        #expect(d.negotiate(driverFeatures: d.deviceFeatures()))
        d.driverOk()
        #expect(d.status & VirtioStatus.deviceNeedsReset == 0)
        // Guest memory at 0 happens to look like an available request: avail idx 1,
        // ring[0] = head 2, descriptor 2 = 64 writable bytes at 0x20000.
        try d.memory.store(UInt16(1), at: 2)
        try d.memory.store(UInt16(2), at: 4)
        try d.memory.store(UInt64(0x20000), at: 32)
        try d.memory.store(UInt32(64), at: 40)
        try d.memory.store(VirtqDesc.write, at: 44)
        let before = d.bytes(0, 64)
        d.write32(VirtioMmio.queueNotify, 0)
        d.runDevice()
        #expect(d.bytes(0x20000, 64) == [UInt8](repeating: 0, count: 64), "the device served a queue that is not ready")
        #expect(d.bytes(0, 64) == before, "the device wrote a used ring for a queue that is not ready")
        #expect(rng.bytesServed == 0)
        #expect(d.interrupts() == 0)
    }

    @Test func aQueueFailureNeedsReset() throws {
        let device = VirtioRecordingDevice()
        let d = try VirtioTestDriver(device: device)
        try d.initialize()
        device.failProcessing = true
        _ = d.interrupts()
        d.notify(1)
        #expect(device.processed.all == [1])
        #expect(d.status & VirtioStatus.deviceNeedsReset != 0)
        #expect(d.interrupts() == 1)
        #expect(d.handleInterrupt() == VirtioInterrupt.configChange)
        d.notify(0)
        d.notify(1)
        #expect(device.processed.all == [1])  // nothing more until reset
        device.failProcessing = false
        d.reset()
        #expect(device.resets.count == 1)
        try d.initialize()
        #expect(d.status & VirtioStatus.deviceNeedsReset == 0)
        d.notify(0)
        #expect(device.processed.all == [1, 0])
    }

    @Test func anActivationFailureNeedsReset() throws {
        let device = VirtioRecordingDevice()
        device.failActivation = true
        let d = try VirtioTestDriver(device: device)
        #expect(throws: VirtioTestDriverError.self) { try d.initialize() }
        #expect(d.status & VirtioStatus.deviceNeedsReset != 0)
        #expect(!d.transport.isActive)
        #expect(d.interruptStatus == VirtioInterrupt.configChange)
        d.notify(0)
        #expect(device.processed.count == 0)
    }

    // MARK: Interrupts and configuration space

    @Test func interruptAckClearsOnlyTheAcknowledgedBits() throws {
        let (d, _) = try rngDriver()
        try d.initialize()
        d.interrupt.signal(VirtioInterrupt.usedBuffer)
        d.interrupt.signal(VirtioInterrupt.configChange)
        #expect(d.interrupts() == 2)
        #expect(d.interruptStatus == 3)
        d.write32(VirtioMmio.interruptAck, VirtioInterrupt.usedBuffer)
        #expect(d.interruptStatus == VirtioInterrupt.configChange)
        d.write32(VirtioMmio.interruptAck, 0)
        #expect(d.interruptStatus == VirtioInterrupt.configChange)
        d.write32(VirtioMmio.interruptAck, VirtioInterrupt.configChange)
        #expect(d.interruptStatus == 0)
    }

    @Test func configurationSpaceAnyWidth() throws {
        let device = VirtioRecordingDevice(config: [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])
        let d = try VirtioTestDriver(device: device)
        #expect(d.readConfig(0, width: 1) == [0x11])
        #expect(d.readConfig(2, width: 2) == [0x33, 0x44])
        #expect(d.readConfig(4, width: 4) == [0x55, 0x66, 0x77, 0x88])
        #expect(d.readConfig(6, width: 4) == [0x77, 0x88, 0, 0])  // zero past the end
        #expect(d.readConfig(0, width: 8) == device.config)
        d.writeConfig(1, [0xAB])
        #expect(device.configWrites.all == [[1, 0xAB]])
        #expect(d.readConfig(0, width: 2) == [0x11, 0xAB])
        try d.initialize()
        d.writeConfig(0, [1, 2, 3, 4])
        #expect(device.configWrites.all.last == [0, 1, 2, 3, 4])
    }
}
