import Glibc
import Logging
import VMM

/// virtio-blk (virtio 1.2, 5.2) over a `BlockBackend`: reads, writes, flush, get-id,
/// discard and write-zeroes, with a synchronous or a Linux-AIO engine. Every request is
/// checked (type, range, lengths, read-only) and answered with a status byte; none can
/// crash the VMM.
public final class VirtioBlock: VirtioDevice, @unchecked Sendable {  // `backend`, `context` and the counters change only under the transport's lock
    public enum RequestType: UInt32 {
        case read = 0, write = 1, flush = 4, getId = 8, discard = 11, writeZeroes = 13
    }

    public enum Status: UInt8 { case ok = 0, ioError = 1, unsupported = 2 }

    // Feature bits (virtio 1.2, 5.2.3)
    public static let featureSegMax: UInt64 = 1 << 2
    public static let featureReadOnly: UInt64 = 1 << 5
    public static let featureBlockSize: UInt64 = 1 << 6
    public static let featureFlush: UInt64 = 1 << 9
    public static let featureTopology: UInt64 = 1 << 10
    public static let featureDiscard: UInt64 = 1 << 13
    public static let featureWriteZeroes: UInt64 = 1 << 14

    public static let queueSize: UInt16 = 256
    public static let idLength = 20
    static let headerSize = 16
    static let segmentSize = 16
    /// Most discard/write-zeroes segments accepted in one request.
    static let maxSegments: UInt32 = 1

    public let deviceType = VirtioDeviceType.block
    public let queueMaxSizes: [UInt16] = [VirtioBlock.queueSize]
    /// The open disk; replaced only through `replaceBackend` (under the transport lock).
    public private(set) var backend: BlockBackend
    public let serial: String
    public let engineKind: BlockEngine
    /// Its lines are about the guest's requests, which a guest can repeat at will: rate limited.
    let logger: RateLimitedLogger
    let aio: AioEngine?
    /// Firecracker's drive `rate_limiter`: bytes read or written, and requests of any type.
    public let rateLimiter: RateLimiter
    private var context: VirtioDeviceContext?

    /// Counters for metrics and tests.
    public private(set) var readBytes: UInt64 = 0
    public private(set) var writtenBytes: UInt64 = 0
    public private(set) var requests: UInt64 = 0
    public private(set) var failedRequests: UInt64 = 0

    /// The four counters above, read together (under the transport lock) for the metrics.
    public struct Counters: Sendable, Equatable {
        public var readBytes: UInt64
        public var writtenBytes: UInt64
        public var requests: UInt64
        public var failedRequests: UInt64
        public var rateLimiter: RateLimiter.Counters
    }

    public var deviceCounters: DeviceCounters {
        .block(Counters(readBytes: readBytes, writtenBytes: writtenBytes, requests: requests,
                        failedRequests: failedRequests, rateLimiter: rateLimiter.counters))
    }

    public init(backend: BlockBackend, serial: String, engine: BlockEngine, rateLimiter: RateLimiterConfig = .unlimited,
                logger: Logger) throws {
        self.backend = backend
        self.serial = serial
        self.engineKind = engine
        self.logger = RateLimitedLogger(logger)
        aio = engine == .aio ? try AioEngine(depth: Int(Self.queueSize)) : nil
        self.rateLimiter = try RateLimiter(rateLimiter)
    }

    public var timedQueues: [TimedQueue] { [rateLimiter.timedQueue(0)] }

    /// The completion eventfd the event loop must watch (AIO engine only).
    public var backendEvents: EventFd? { aio?.completion }

    public var offeredFeatures: UInt64 {
        var features = VirtioFeature.version1 | VirtioFeature.ringIndirectDescriptors | VirtioFeature.ringEventIndex
            | Self.featureSegMax | Self.featureBlockSize | Self.featureFlush | Self.featureTopology
        if backend.readOnly {
            features |= Self.featureReadOnly
        } else {
            features |= Self.featureDiscard | Self.featureWriteZeroes
        }
        return features
    }

    /// struct virtio_blk_config, up to write_zeroes_may_unmap.
    public var configSpace: [UInt8] {
        var w = ByteWriter(size: 60)
        w.u64(backend.sectors, at: 0)  // capacity
        w.u32(UInt32(Self.queueSize) - 2, at: 12)  // seg_max
        w.u32(UInt32(BlockBackend.sectorSize), at: 20)  // blk_size
        w.u8(0, at: 24)  // physical_block_exp
        w.u8(0, at: 25)  // alignment_offset
        w.u16(1, at: 26)  // min_io_size (in blk_size units)
        w.u32(0, at: 28)  // opt_io_size
        w.u16(1, at: 34)  // num_queues
        let maxSectors = UInt32(clamping: backend.sectors)
        w.u32(maxSectors, at: 36)  // max_discard_sectors
        w.u32(Self.maxSegments, at: 40)  // max_discard_seg
        w.u32(8, at: 44)  // discard_sector_alignment: 4 KiB
        w.u32(maxSectors, at: 48)  // max_write_zeroes_sectors
        w.u32(Self.maxSegments, at: 52)  // max_write_zeroes_seg
        w.u8(0, at: 56)  // write_zeroes_may_unmap
        return w.bytes
    }

    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        readConfig(configSpace, offset: offset, into: data)
    }

    public func activate(_ context: VirtioDeviceContext) throws {
        self.context = context
    }

    public func reset() {
        aio?.drain()
        context = nil
    }

    public func process(queue index: Int) throws {
        guard let context, index == 0 else { return }
        let queue = context.queues[0]
        var completed = false
        requests: while let chain = try queue.nextChain(context.memory, badChain: { error in
            failedRequests += 1
            completed = true
            logger.warning("virtio-blk \(serial): bad descriptor chain: \(error)")
        }) {
            switch handle(chain, context.memory) {
            case .throttled:
                // Held back: the chain stays on the ring until the limiter's timer runs the queue again.
                queue.unpop()
                break requests
            case .submitted:
                requests += 1
            case .done(let status, let used):
                requests += 1
                if status != .ok { failedRequests += 1 }
                try complete(chain: chain, status: status, used: used, context)
                completed = true
            }
        }
        if completed { context.interrupt.signalUsed(queue, context.memory) }
    }

    public enum ReplaceError: Error, CustomStringConvertible {
        case readOnlyMismatch(path: String)
        public var description: String {
            switch self {
            case .readOnlyMismatch(let path):
                return "disk '\(path)' must be opened with the same read-only mode as the disk it replaces"
            }
        }
    }

    /// Points the disk at another file or block device while the guest runs (Firecracker's
    /// PATCH /drives path_on_host). Requests already at the AIO engine complete on the old
    /// file first; the caller then tells the driver that the capacity may have changed.
    /// Must run under the transport lock, like queue processing.
    public func replaceBackend(_ newBackend: BlockBackend) throws {
        guard newBackend.readOnly == backend.readOnly else { throw ReplaceError.readOnlyMismatch(path: newBackend.path) }
        if aio != nil, context != nil { try completeAio(wait: true) }
        backend = newBackend
    }

    /// Reaps AIO completions (event loop, under the transport lock).
    public func processBackendEvents() throws {
        try completeAio(wait: false)
    }

    private func completeAio(wait: Bool) throws {
        guard let context, let aio else { return }
        let queue = context.queues[0]
        var completed = false
        var failure: Error?
        let finish: (AioEngine.Pending, Bool) -> Void = { request, success in
            if !success { self.failedRequests += 1 }
            // The data landed now, after the pages were marked at submission: mark them
            // again, or a dirty-page read in between would miss them.
            if request.isRead, context.memory.dirtyPages != nil {
                for buffer in request.buffers { context.memory.markWritten(buffer) }
            }
            do {
                try context.memory.store((success ? Status.ok : Status.ioError).rawValue, at: request.statusAddress)
                try queue.addUsed(context.memory, head: request.head, length: request.usedLength)
                completed = true
            } catch {
                failure = error
            }
        }
        if wait { aio.drain(finish) } else { aio.reap(finish) }
        if let failure { throw failure }
        if completed { context.interrupt.signalUsed(queue, context.memory) }
    }

    private func complete(chain: DescriptorChain, status: Status, used: UInt32, _ context: VirtioDeviceContext) throws {
        if let last = chain.writable.last {
            try context.memory.store(status.rawValue, at: last.address + UInt64(last.length) - 1)
        }
        try context.queues[0].addUsed(context.memory, head: chain.head, length: chain.writable.isEmpty ? 0 : used)
    }

    /// What became of one request.
    enum Outcome: Equatable {
        /// Answered now with this status and used length.
        case done(Status, UInt32)
        /// At the AIO engine, which completes it later.
        case submitted
        /// The rate limiter holds it back; nothing was done.
        case throttled
    }

    /// Serves one request. The rate limiter is asked only once the request is known to be
    /// valid, and charged what it really moves: a malformed request is answered (an error
    /// status) without touching the buckets, so a guest cannot run its disk into debt with
    /// lengths it never transfers.
    func handle(_ chain: DescriptorChain, _ memory: GuestMemory) -> Outcome {
        // The status byte is the last writable byte; without one there is no way to answer.
        let writable = chain.writableLength
        guard writable >= 1 else {
            logger.warning("virtio-blk \(serial): request without a status byte")
            return .done(.ioError, 0)
        }
        // The used length is 32-bit: a chain claiming more is refused, not truncated.
        guard writable <= Int(UInt32.max), chain.readableLength <= Int(UInt32.max) else { return .done(.ioError, 1) }
        var reader = chain.reader(memory)
        guard let rawType = reader.read(UInt32.self), reader.read(UInt32.self) != nil,
              let sector = reader.read(UInt64.self) else {
            return .done(.ioError, 1)
        }
        guard let type = RequestType(rawValue: rawType) else { return .done(.unsupported, 1) }
        var writer = chain.writer(memory)
        switch type {
        case .read:
            let length = writable - 1
            guard UInt64(length) % BlockBackend.sectorSize == 0,
                  backend.contains(sector: sector, bytes: UInt64(length)) else { return .done(.ioError, 1) }
            guard rateLimiter.consume(bytes: UInt64(length)) else { return .throttled }
            readBytes += UInt64(length)
            return transfer(writer.take(length), sector: sector, write: false, chain: chain, usedLength: UInt32(writable))
        case .write:
            guard !backend.readOnly else { return .done(.ioError, 1) }
            let length = reader.remaining
            guard UInt64(length) % BlockBackend.sectorSize == 0,
                  backend.contains(sector: sector, bytes: UInt64(length)) else { return .done(.ioError, 1) }
            guard rateLimiter.consume(bytes: UInt64(length)) else { return .throttled }
            writtenBytes += UInt64(length)
            return transfer(reader.take(length), sector: sector, write: true, chain: chain, usedLength: 1)
        case .flush:
            guard rateLimiter.consume(bytes: 0) else { return .throttled }
            return backend.flush() ? .done(.ok, 1) : .done(.ioError, 1)
        case .getId:
            guard rateLimiter.consume(bytes: 0) else { return .throttled }
            var id = Array(serial.utf8.prefix(Self.idLength))
            if id.count < Self.idLength { id += [UInt8](repeating: 0, count: Self.idLength - id.count) }
            let n = writer.write(Array(id.prefix(writable - 1)))
            return .done(.ok, UInt32(n + 1))
        case .discard, .writeZeroes:
            guard !backend.readOnly else { return .done(.ioError, 1) }
            let segments = reader.remaining / Self.segmentSize
            guard segments >= 1, segments <= Int(Self.maxSegments), reader.remaining % Self.segmentSize == 0 else {
                return .done(.unsupported, 1)
            }
            guard rateLimiter.consume(bytes: 0) else { return .throttled }
            for _ in 0..<segments {
                guard let start = reader.read(UInt64.self), let count = reader.read(UInt32.self),
                      let flags = reader.read(UInt32.self) else { return .done(.ioError, 1) }
                let bytes = UInt64(count) * BlockBackend.sectorSize
                guard backend.contains(sector: start, bytes: bytes) else { return .done(.ioError, 1) }
                // write-zeroes flag bit 0 is "unmap": then deallocating is allowed.
                let deallocate = type == .discard || flags & 1 != 0
                guard backend.zero(at: start * BlockBackend.sectorSize, length: bytes, deallocate: deallocate) else {
                    return .done(.ioError, 1)
                }
            }
            return .done(.ok, 1)
        }
    }

    /// Reads or writes the guest buffers `pieces` at `sector` through the disk's engine.
    private func transfer(_ pieces: [UnsafeMutableRawBufferPointer], sector: UInt64, write: Bool,
                          chain: DescriptorChain, usedLength: UInt32) -> Outcome {
        let offset = sector * BlockBackend.sectorSize
        if let aio, let status = statusAddress(chain) {
            return aio.submit(fd: backend.fd.rawValue, pieces: pieces, offset: offset, write: write, head: chain.head,
                              statusAddress: status, usedLength: usedLength) ? .submitted : .done(.ioError, 1)
        }
        return backend.transfer(pieces, at: offset, write: write) ? .done(.ok, usedLength) : .done(.ioError, 1)
    }

    private func statusAddress(_ chain: DescriptorChain) -> UInt64? {
        chain.writable.last.map { $0.address + UInt64($0.length) - 1 }
    }
}
