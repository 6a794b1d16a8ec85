import Glibc
import Testing
@testable import Devices
@testable import VMM

/// virtio-balloon driven as Linux's virtio_balloon driver drives it: PFN arrays on the
/// inflate queue, one statistics buffer lent to the device, free page reports.
@Suite struct VirtioBalloonTests {
    func driver(_ config: VirtioBalloon.Config, features: UInt64? = nil) throws -> (VirtioTestDriver, VirtioBalloon) {
        let balloon = try VirtioBalloon(config, logger: quietLogger())
        let d = try VirtioTestDriver(device: balloon)
        try d.initialize(features: features)
        return (d, balloon)
    }

    /// A buffer of little-endian u32 PFNs.
    func pfns(_ d: VirtioTestDriver, _ values: [UInt32]) throws -> VirtioTestBuffer {
        let at = d.allocate(values.count * 4)
        for (i, pfn) in values.enumerated() { try d.memory.store(pfn, at: at + UInt64(i * 4)) }
        return .readable(at, UInt32(values.count * 4))
    }

    @Test func featuresQueuesAndConfigFollowTheConfiguration() throws {
        let plain = try VirtioBalloon(VirtioBalloon.Config(amountMiB: 1), logger: quietLogger())
        #expect(plain.queueMaxSizes.count == 2)
        #expect(plain.offeredFeatures & (VirtioBalloon.featureStatsVq | VirtioBalloon.featureDeflateOnOom | VirtioBalloon.featureFreePageReporting) == 0)
        let (d, balloon) = try driver(VirtioBalloon.Config(amountMiB: 3, deflateOnOom: true, statsPollingIntervalS: 1, freePageReporting: true))
        #expect(balloon.queueMaxSizes.count == 4)
        #expect(d.features & VirtioBalloon.featureDeflateOnOom != 0)
        // num_pages: the target in 4 KiB pages; actual: what the driver writes.
        #expect(d.readConfig(0, width: 4) == [0x00, 0x03, 0, 0])
        d.writeConfig(4, [0x10, 0x02, 0, 0])
        d.writeConfig(0, [0xff, 0xff, 0xff, 0xff])  // num_pages is the device's: ignored
        #expect(d.readConfig(0, width: 8) == [0x00, 0x03, 0, 0, 0x10, 0x02, 0, 0])
        balloon.setTarget(amountMiB: 5)
        #expect(d.readConfig(0, width: 4) == [0x00, 0x05, 0, 0])
        #expect(balloon.currentStatistics.actualPages == 0x210)
    }

    @Test func inflatedPagesReadAsZeroesAndBadPfnsAreSkipped() throws {
        let (d, balloon) = try driver(VirtioBalloon.Config(amountMiB: 1))
        let base: UInt64 = 8 << 20
        d.fill(base, 3 * 4096, with: 0x5a)
        let first = UInt32(base >> 12)
        // Three consecutive pages (given back as one run), a PFN beyond RAM, the largest PFN.
        let buffer = try pfns(d, [first, first + 1, first + 2, UInt32(VirtioTestDriver.defaultMemorySize >> 12) + 10, .max])
        try d.add([buffer], queue: 0)
        d.notify(0)
        #expect(d.getUsed(0).map(\.len) == [0])
        #expect(d.bytes(base, 3 * 4096).allSatisfy { $0 == 0 })
        #expect(balloon.counters.inflatedPages == 3 && balloon.counters.badRequests == 2)
        // Deflate: the pages come back (they fault in again, still zero).
        try d.add([try pfns(d, [first, first + 1])], queue: 1)
        d.notify(1)
        #expect(d.getUsed(1).map(\.len) == [0] && balloon.counters.deflatedPages == 2)
        d.fill(base, 4096, with: 0x11)
        #expect(d.bytes(base, 1) == [0x11])
        // A buffer of more than Linux's 256 PFNs: only the first 256 are read.
        let many = try pfns(d, (0..<300).map { first + 16 + UInt32($0) * 2 })
        try d.add([many], queue: 0)
        d.notify(0)
        #expect(d.getUsed(0).count == 1 && balloon.counters.inflatedPages == 3 + 256)
    }

    /// Each pass gives back at most 4096 PFNs, then yields the event loop: the rest of the
    /// ring is served on the next turn, and nothing is lost.
    @Test func inflationIsServedInBoundedPasses() throws {
        let balloon = try VirtioBalloon(VirtioBalloon.Config(amountMiB: 1), logger: quietLogger())
        let d = try VirtioTestDriver(device: balloon, memory: GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 64 << 20)),
                                     eventLoop: false)  // one pass per runDevice, to see the budget
        try d.initialize()
        let first = UInt32((16 << 20) >> 12)
        for chain in 0..<20 {  // 20 x 256 scattered PFNs: 5120, more than one pass takes
            try d.add([try pfns(d, (0..<256).map { first + UInt32(chain * 512 + $0 * 2) })], queue: 0)
        }
        d.notify(0)
        #expect(balloon.counters.inflatedPages == 4096)
        d.runDevice()  // the doorbell the pass rang
        #expect(balloon.counters.inflatedPages == 20 * 256 && d.getUsed(0).count == 20)
    }

    /// Linux fills and kicks the statistics queue before DRIVER_OK, when the transport
    /// drops doorbells: the device must find that buffer when it starts.
    @Test func statisticsPrimedBeforeDriverOkAreRead() throws {
        let balloon = try VirtioBalloon(VirtioBalloon.Config(amountMiB: 0, statsPollingIntervalS: 60), logger: quietLogger())
        let d = try VirtioTestDriver(device: balloon)
        try d.negotiateEveryFeature()
        for index in balloon.queueMaxSizes.indices { _ = try d.setUpQueue(index) }
        let stats = d.allocate(10)
        try d.memory.store(UInt16(4), at: stats)
        try d.memory.store(UInt64(12345), at: stats + 2)
        try d.add([.readable(stats, 10)], queue: 2)
        d.notify(2)
        #expect(balloon.currentStatistics.values.isEmpty)  // not live yet
        d.driverOk()
        d.runDevice()
        #expect(balloon.currentStatistics.values == [4: 12345])
    }

    @Test func theStatisticsBufferIsKeptUntilThePollAsksForFreshFigures() throws {
        let (d, balloon) = try driver(VirtioBalloon.Config(amountMiB: 0, statsPollingIntervalS: 1))
        let stats = d.allocate(30)
        func fill(_ free: UInt64) throws {
            try d.memory.store(UInt16(4), at: stats)  // VIRTIO_BALLOON_S_MEMFREE
            try d.memory.store(free, at: stats + 2)
            try d.memory.store(UInt16(5), at: stats + 10)  // VIRTIO_BALLOON_S_MEMTOT
            try d.memory.store(UInt64(1 << 30), at: stats + 12)
            try d.memory.store(UInt16(99), at: stats + 20)  // beyond the tags kept: ignored
            try d.memory.store(UInt64(7), at: stats + 22)
        }
        try fill(1000)
        try d.add([.readable(stats, 30)], queue: 2)
        d.notify(2)
        #expect(d.getUsed(2).isEmpty)  // held: the device returns it when it wants new figures
        #expect(balloon.currentStatistics.values == [4: 1000, 5: 1 << 30])
        // The poll (1 s): the buffer comes back; the driver refills and sends it again.
        var returned: [(id: UInt32, len: UInt32)] = []
        for _ in 0..<40 where returned.isEmpty {
            d.loop?.runOnce(timeoutMs: 100)
            returned = d.getUsed(2)
        }
        #expect(returned.count == 1)
        try fill(2000)
        try d.add([.readable(stats, 30)], queue: 2)
        d.notify(2)
        #expect(balloon.currentStatistics.values[4] == 2000 && balloon.counters.statsUpdates == 2)
    }

    @Test func freePageReportsAreGivenBack() throws {
        let (d, balloon) = try driver(VirtioBalloon.Config(amountMiB: 0, freePageReporting: true))
        // Without statistics the reporting queue is the third (index 2).
        let range: UInt64 = 10 << 20
        d.fill(range, 2 << 20, with: 0x77)
        try d.add([.writable(range, 2 << 20), .writable(range + (4 << 20), 100)], queue: 2)
        d.notify(2)
        #expect(d.getUsed(2).map(\.len) == [0])
        #expect(d.bytes(range, 2 << 20).allSatisfy { $0 == 0 })
        // The unaligned 100 bytes are not a page range: refused, counted, nothing discarded.
        #expect(balloon.counters.reportedBytes == 2 << 20 && balloon.counters.badRequests == 1)
    }

    /// Free page hinting as Linux's driver runs it: the host's command id in the config
    /// space, the guest's answer with that id on the hinting queue, its free blocks (given
    /// back), then STOP, which the device answers with DONE so that the driver frees them.
    @Test func freePageHintingRunsTheHostStarts() throws {
        let (d, balloon) = try driver(VirtioBalloon.Config(amountMiB: 0, statsPollingIntervalS: 1, freePageReporting: true,
                                                           freePageHinting: true))
        // inflate, deflate, statistics, hinting, reporting.
        #expect(balloon.queueMaxSizes.count == 5 && d.features & VirtioBalloon.featureFreePageHint != 0)
        let hintQueue = 3
        #expect(d.readConfig(8, width: 4) == [0, 0, 0, 0])
        balloon.startHinting(acknowledgeOnStop: true)
        #expect(d.readConfig(8, width: 4) == [2, 0, 0, 0])
        func command(_ id: UInt32) throws -> VirtioTestBuffer {
            let at = d.allocate(4)
            try d.memory.store(id, at: at)
            return .readable(at, 4)
        }
        let block: UInt64 = 8 << 20, stale: UInt64 = 13 << 20
        d.fill(block, 4 << 20, with: 0x55)
        d.fill(stale, 1 << 20, with: 0x66)
        // A block sent under an old run's id is the guest's again: untouched.
        try d.add([try command(7)], queue: hintQueue)
        try d.add([.writable(stale, 1 << 20)], queue: hintQueue)
        d.notify(hintQueue)
        #expect(d.bytes(stale, 1 << 20).allSatisfy { $0 == 0x66 } && balloon.counters.hintedBytes == 0)
        // The current run: its block is given back.
        try d.add([try command(2)], queue: hintQueue)
        try d.add([.writable(block, 4 << 20)], queue: hintQueue)
        d.notify(hintQueue)
        #expect(d.bytes(block, 4 << 20).allSatisfy { $0 == 0 })
        #expect(balloon.counters.hintedBytes == 4 << 20)
        #expect(balloon.hintingStatus == .init(hostCommand: 2, guestCommand: 2))
        // STOP: acknowledged with DONE, announced as a configuration change.
        let generation = d.read32(0xFC)
        try d.add([try command(0)], queue: hintQueue)
        d.notify(hintQueue)
        #expect(balloon.hintingStatus == .init(hostCommand: 1, guestCommand: 0))
        #expect(d.read32(0x60) & 2 != 0 && d.read32(0xFC) == generation &+ 1)
        #expect(d.getUsed(hintQueue).count == 5)
        // Without acknowledge_on_stop, DONE waits for the host.
        balloon.startHinting(acknowledgeOnStop: false)
        #expect(d.readConfig(8, width: 4) == [3, 0, 0, 0])
        try d.add([try command(3)], queue: hintQueue)
        try d.add([try command(0)], queue: hintQueue)
        d.notify(hintQueue)
        #expect(balloon.hintingStatus == .init(hostCommand: 3, guestCommand: 0))
        balloon.stopHinting()
        #expect(balloon.hintingStatus.hostCommand == 1)
        // A STOP that ends an older run does not end the new one: only the one after the
        // guest answered the current id does.
        balloon.startHinting(acknowledgeOnStop: true)
        try d.add([try command(0)], queue: hintQueue)
        d.notify(hintQueue)
        #expect(balloon.hintingStatus == .init(hostCommand: 4, guestCommand: 0))
        try d.add([try command(4)], queue: hintQueue)
        try d.add([try command(0)], queue: hintQueue)
        d.notify(hintQueue)
        #expect(balloon.hintingStatus == .init(hostCommand: 1, guestCommand: 0))
    }
}
