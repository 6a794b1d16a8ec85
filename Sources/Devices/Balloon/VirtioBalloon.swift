import Glibc
import Logging
import Synchronization
import VMM

/// virtio-balloon (virtio 1.2, 5.5), as Firecracker's: the host sets a target size and the
/// guest's driver inflates (hands over page frame numbers, whose host memory we give back)
/// or deflates (takes pages back, which fault in again on touch). Optional: deflate on
/// OOM (a feature bit for the driver), the statistics queue polled every
/// `statsPollingIntervalS`, free page hinting (runs the host starts and stops: the driver
/// lends free blocks for the run's length, given back at once) and free page reporting
/// (the driver reports free ranges, which are given back the same way). Everything the guest sends is bounded: PFNs outside its
/// RAM are skipped and counted, one inflate buffer is read up to Linux's 256 PFNs, and a
/// pass gives back at most `maxPfnsPerPass` before it yields the event loop.
public final class VirtioBalloon: VirtioDevice, @unchecked Sendable {  // every var changes under the transport's lock (queue processing, withDeviceLocked)
    public static let featureStatsVq: UInt64 = 1 << 1
    public static let featureDeflateOnOom: UInt64 = 1 << 2
    public static let featureFreePageHint: UInt64 = 1 << 3
    public static let featureFreePageReporting: UInt64 = 1 << 5

    public static let pageSize: UInt64 = 4096
    static let queueSize: UInt16 = 256
    /// The most bytes of one inflate or deflate buffer read: Linux's 256 PFNs
    /// (VIRTIO_BALLOON_ARRAY_PFNS_MAX).
    static let maxPfnBytes = 256 * 4
    /// PFNs given back in one pass over the inflate queue (each may cost an madvise and a
    /// TLB shootdown); the rest waits for the next turn of the event loop.
    static let maxPfnsPerPass = 4096
    /// Ranges (hinted blocks, reported ranges) given back in one pass over their queue.
    static let maxRangesPerPass = 1024
    static let statSize = 10  // struct virtio_balloon_stat: u16 tag, u64 value (packed)
    /// The most statistics entries read from one buffer.
    static let maxStats = 64
    /// Tags kept: the spec's (0-15) and room for new ones; others are ignored, so a guest
    /// cannot grow the table.
    static let maxTag: UInt16 = 64

    public struct Config: Sendable, Equatable {
        public var amountMiB: UInt32
        public var deflateOnOom: Bool
        /// 0: no statistics queue.
        public var statsPollingIntervalS: UInt32
        public var freePageReporting: Bool
        public var freePageHinting: Bool

        public init(amountMiB: UInt32, deflateOnOom: Bool = false, statsPollingIntervalS: UInt32 = 0, freePageReporting: Bool = false,
                    freePageHinting: Bool = false) {
            self.amountMiB = amountMiB
            self.deflateOnOom = deflateOnOom
            self.statsPollingIntervalS = statsPollingIntervalS
            self.freePageReporting = freePageReporting
            self.freePageHinting = freePageHinting
        }
    }

    /// The guest's latest statistics, by virtio tag (VIRTIO_BALLOON_S_*), with what the
    /// device knows: its target and the size the driver reports.
    public struct Statistics: Sendable, Equatable {
        public var targetPages: UInt32
        public var actualPages: UInt32
        public var values: [UInt16: UInt64]
    }

    public struct Counters: Sendable, Equatable {
        public var inflatedPages: UInt64 = 0
        public var deflatedPages: UInt64 = 0
        public var reportedBytes: UInt64 = 0
        public var hintedBytes: UInt64 = 0
        public var statsUpdates: UInt64 = 0
        /// PFNs outside guest RAM, ranges that could not be given back, bad buffers.
        public var badRequests: UInt64 = 0

        public init() {}
    }

    public let deviceType = VirtioDeviceType.balloon
    public let queueMaxSizes: [UInt16]
    public let offeredFeatures: UInt64
    public var deviceCounters: DeviceCounters { .balloon(counters) }
    /// The configuration; the target lives in `targetMiB`, which the register path reads
    /// without the transport lock.
    public var config: Config {
        var config = configuration
        config.amountMiB = targetMiB.load(ordering: .acquiring)
        return config
    }
    private var configuration: Config
    private let targetMiB: Atomic<UInt32>
    public internal(set) var counters = Counters()
    /// Fires every polling interval while the statistics queue is in use.
    let statsTimer: TimerFd
    let logger: RateLimitedLogger
    private var context: VirtioDeviceContext?
    /// What the driver reports as the balloon's size (config field `actual`); written
    /// through the registers, read by the API.
    private let actualPages = Atomic<UInt32>(0)
    private var statistics: [UInt16: UInt64] = [:]
    /// The statistics buffer the driver lent us, returned when we want fresh figures.
    private var statsHead: UInt16?
    /// Set by the polling timer on the event loop, outside the transport lock.
    private let statsDue = Atomic<Bool>(false)
    /// Queue indexes, once the features are known (absent queues take no index).
    private var statsQueue: Int?
    private var hintQueue: Int?
    private var reportingQueue: Int?
    /// Free page hinting: the command the host set (`free_page_hint_cmd_id`, read by the
    /// register path), the last one the guest sent, and whether a STOP from the guest is
    /// answered with DONE at once (Firecracker's `acknowledge_on_stop`).
    let hostCommand = Atomic<UInt32>(0)
    var guestCommand: UInt32?
    var acknowledgeOnStop = true
    var nextRun = VirtioBalloon.firstRunCommand
    var configurationChangePending = false
    static let stopCommand: UInt32 = 0  // VIRTIO_BALLOON_CMD_ID_STOP
    static let doneCommand: UInt32 = 1  // VIRTIO_BALLOON_CMD_ID_DONE
    static let firstRunCommand: UInt32 = 2

    public init(_ config: Config, logger: Logger) throws {
        configuration = config
        targetMiB = Atomic(config.amountMiB)
        self.logger = RateLimitedLogger(logger)
        var features = VirtioFeature.version1 | VirtioFeature.ringIndirectDescriptors
        if config.deflateOnOom { features |= Self.featureDeflateOnOom }
        if config.statsPollingIntervalS > 0 { features |= Self.featureStatsVq }
        if config.freePageReporting { features |= Self.featureFreePageReporting }
        if config.freePageHinting { features |= Self.featureFreePageHint }
        offeredFeatures = features
        queueMaxSizes = [UInt16](repeating: Self.queueSize,
                                 count: 2 + (config.statsPollingIntervalS > 0 ? 1 : 0) + (config.freePageHinting ? 1 : 0)
                                     + (config.freePageReporting ? 1 : 0))
        statsTimer = try TimerFd()
    }

    deinit { statsTimer.close() }

    /// Target pages: the amount in 4 KiB pages.
    var targetPages: UInt32 { UInt32(clamping: UInt64(targetMiB.load(ordering: .acquiring)) << 20 / Self.pageSize) }

    /// struct virtio_balloon_config: num_pages (our target), actual (the driver's),
    /// free_page_hint_cmd_id, poison_val (0: no poisoning offered).
    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        var w = ByteWriter(size: 16)
        w.u32(targetPages, at: 0)
        w.u32(actualPages.load(ordering: .acquiring), at: 4)
        w.u32(hostCommand.load(ordering: .acquiring), at: 8)
        readConfig(w.bytes, offset: offset, into: data)
    }

    public func writeConfig(offset: Int, from data: UnsafeRawBufferPointer) {
        // Only `actual` (bytes 4-7) is the driver's to write.
        var actual = actualPages.load(ordering: .acquiring)
        for (i, byte) in data.enumerated() where (4..<8).contains(offset + i) {
            let shift = UInt32((offset + i - 4) * 8)
            actual = actual & ~(0xFF << shift) | UInt32(byte) << shift
        }
        actualPages.store(actual, ordering: .releasing)
    }

    /// A new target (PATCH /balloon); the caller tells the driver (a configuration interrupt).
    public func setTarget(amountMiB: UInt32) { targetMiB.store(amountMiB, ordering: .releasing) }

    /// A new polling interval (PATCH /balloon/statistics); the queue cannot be added or removed.
    public func setStatsPollingInterval(seconds: UInt32) {
        configuration.statsPollingIntervalS = seconds
        if context != nil, statsQueue != nil { armStatsTimer() }
    }

    public var currentStatistics: Statistics {
        Statistics(targetPages: targetPages, actualPages: actualPages.load(ordering: .acquiring), values: statistics)
    }

    public var timedQueues: [TimedQueue] {
        // The statistics queue's index is fixed by the features offered (stats comes first).
        guard configuration.statsPollingIntervalS > 0 else { return [] }
        return [TimedQueue(timer: statsTimer, queue: 2) { [self] in
            statsTimer.consume()
            statsDue.store(true, ordering: .releasing)
        }]
    }

    public func activate(_ context: VirtioDeviceContext) throws {
        self.context = context
        var next = 2
        statsQueue = nil
        hintQueue = nil
        reportingQueue = nil
        if context.features & Self.featureStatsVq != 0 {
            statsQueue = next
            next += 1
        }
        if context.features & Self.featureFreePageHint != 0 {
            hintQueue = next
            next += 1
        }
        if context.features & Self.featureFreePageReporting != 0 { reportingQueue = next }
        statsHead = nil
        if let statsQueue {
            armStatsTimer()
            // Linux primes the statistics queue and kicks it before DRIVER_OK, when the
            // transport drops doorbells: look at it now, or its figures wait a whole interval.
            context.queues[statsQueue].notifier?.signal()
        }
    }

    public func reset() {
        context = nil
        statsHead = nil
        statsDue.store(false, ordering: .releasing)
        statsTimer.disarm()
        actualPages.store(0, ordering: .releasing)
        statistics = [:]
        hostCommand.store(0, ordering: .releasing)
        guestCommand = nil
        configurationChangePending = false
    }

    private func armStatsTimer() {
        let seconds = UInt64(configuration.statsPollingIntervalS)
        if seconds == 0 { statsTimer.disarm() } else { statsTimer.arm(afterNs: seconds * 1_000_000_000, periodNs: seconds * 1_000_000_000) }
    }

    public func process(queue index: Int) throws {
        guard let context else { return }
        switch index {
        case 0:
            var budget = Self.maxPfnsPerPass
            try serve(context, queue: 0, while: { budget > 0 }) { chain in budget -= inflate(chain, context.memory) }
        case 1: try serve(context, queue: 1) { chain in deflate(chain, context.memory) }
        case statsQueue: try serveStatistics(context, queue: index)
        case hintQueue:
            var budget = Self.maxRangesPerPass
            try serve(context, queue: index, while: { budget > 0 }) { chain in budget -= hint(chain, context.memory) }
        case reportingQueue:
            var budget = Self.maxRangesPerPass
            try serve(context, queue: index, while: { budget > 0 }) { chain in budget -= report(chain, context.memory) }
        default: break
        }
    }

    /// Takes every chain on `queue` (while `more` holds; else the doorbell is rung to come
    /// back), handles it and returns it (used length 0).
    private func serve(_ context: VirtioDeviceContext, queue index: Int, while more: () -> Bool = { true },
                       _ handle: (DescriptorChain) -> Void) throws {
        let queue = context.queues[index]
        var used = false
        defer { if used { context.interrupt.signalUsed(queue, context.memory) } }
        while true {
            guard more() else {
                if queue.hasAvailable(context.memory) { queue.notifier?.signal() }
                return
            }
            guard let chain = try queue.nextChain(context.memory, badChain: { error in
                counters.badRequests += 1
                used = true
                logger.warning("virtio-balloon: bad descriptor chain: \(error)")
            }) else { return }
            handle(chain)
            try queue.addUsed(context.memory, head: chain.head, length: 0)
            used = true
        }
    }

    /// An inflate buffer: little-endian u32 PFNs. Runs of consecutive PFNs are given back
    /// in one call. Returns the number of PFNs read.
    private func inflate(_ chain: DescriptorChain, _ memory: GuestMemory) -> Int {
        var reader = chain.reader(memory)
        var runStart: UInt64 = 0, runLength: UInt64 = 0
        func flush() {
            guard runLength > 0 else { return }
            if memory.discard(at: runStart * Self.pageSize, length: Int(runLength * Self.pageSize)) {
                counters.inflatedPages += runLength
            } else {
                counters.badRequests += 1
                logger.warning("virtio-balloon: pages 0x\(String(runStart, radix: 16))+\(runLength) are not guest RAM")
            }
            runLength = 0
        }
        defer { flush() }
        let count = min(reader.remaining, Self.maxPfnBytes) / 4
        for _ in 0..<count {
            guard let pfn = reader.read(UInt32.self).map(UInt64.init) else { break }
            if runLength > 0 && pfn == runStart + runLength && runLength < 1 << 18 {
                runLength += 1
            } else {
                flush()
                runStart = pfn
                runLength = 1
            }
        }
        return count
    }

    /// A deflate buffer: the guest takes those pages back; they fault in again when touched.
    private func deflate(_ chain: DescriptorChain, _ memory: GuestMemory) {
        counters.deflatedPages += UInt64(min(chain.readableLength, Self.maxPfnBytes) / 4)
    }

    /// A free page report: each buffer of the chain is a free range of guest RAM. Returns
    /// the number of ranges.
    private func report(_ chain: DescriptorChain, _ memory: GuestMemory) -> Int {
        func giveBack(_ piece: GuestBuffer) {
            if memory.discard(at: piece.address, length: Int(piece.length)) {
                counters.reportedBytes += UInt64(piece.length)
            } else {
                counters.badRequests += 1
            }
        }
        for piece in chain.writable { giveBack(piece) }
        for piece in chain.readable { giveBack(piece) }
        return max(chain.writable.count + chain.readable.count, 1)
    }

    /// The statistics queue: the driver's buffer is read and kept; when the polling timer
    /// asks for fresh figures it is returned, and the driver sends it again refilled.
    private func serveStatistics(_ context: VirtioDeviceContext, queue index: Int) throws {
        let queue = context.queues[index]
        var used = false
        if statsDue.exchange(false, ordering: .acquiringAndReleasing), let head = statsHead {
            try queue.addUsed(context.memory, head: head, length: 0)
            statsHead = nil
            used = true
        }
        while let chain = try queue.nextChain(context.memory, badChain: { error in
            counters.badRequests += 1
            used = true
            logger.warning("virtio-balloon: bad statistics chain: \(error)")
        }) {
            if let held = statsHead {
                // A second buffer while we hold one: the older one goes back unread.
                try queue.addUsed(context.memory, head: held, length: 0)
                used = true
            }
            var reader = chain.reader(context.memory)
            for _ in 0..<min(reader.remaining / Self.statSize, Self.maxStats) {
                guard let tag = reader.read(UInt16.self), let value = reader.read(UInt64.self) else { break }
                if tag < Self.maxTag { statistics[tag] = value }
            }
            counters.statsUpdates += 1
            statsHead = chain.head
        }
        if used { context.interrupt.signalUsed(queue, context.memory) }
    }
}
