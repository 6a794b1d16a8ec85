import CLinux
import Glibc
import Logging
import VMM

/// virtio-rng (virtio 1.2, 5.4): fills every writable buffer the driver offers with bytes
/// from the host's getrandom(2).
public final class VirtioRng: VirtioDevice, @unchecked Sendable {  // `context` and the counters change only under the transport's lock
    public let deviceType = VirtioDeviceType.rng
    public let queueMaxSizes: [UInt16] = [256]
    public let offeredFeatures = VirtioFeature.version1 | VirtioFeature.ringIndirectDescriptors | VirtioFeature.ringEventIndex
    /// Its lines are about the guest's requests, which a guest can repeat at will: rate limited.
    let logger: RateLimitedLogger
    private var context: VirtioDeviceContext?
    /// Bytes handed to the guest (metrics).
    public private(set) var bytesServed: UInt64 = 0
    public private(set) var badRequests: UInt64 = 0
    /// Firecracker's entropy `rate_limiter`: bytes handed out, and requests.
    public let rateLimiter: RateLimiter
    /// The most bytes one request gets: a driver asking for more gets a short answer.
    static let maxRequestBytes = 1 << 16

    public struct Counters: Sendable, Equatable {
        public var bytesServed: UInt64
        public var badRequests: UInt64
        public var rateLimiter: RateLimiter.Counters
    }

    public var deviceCounters: DeviceCounters {
        .rng(Counters(bytesServed: bytesServed, badRequests: badRequests, rateLimiter: rateLimiter.counters))
    }

    public init(rateLimiter: RateLimiterConfig = .unlimited, logger: Logger) throws {
        self.logger = RateLimitedLogger(logger)
        self.rateLimiter = try RateLimiter(rateLimiter)
    }

    public var timedQueues: [TimedQueue] { [rateLimiter.timedQueue(0)] }

    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        readConfig([], offset: offset, into: data)
    }

    public func activate(_ context: VirtioDeviceContext) throws {
        self.context = context
    }

    public func reset() {
        context = nil
    }

    public func process(queue index: Int) throws {
        guard let context, index == 0 else { return }
        let queue = context.queues[0]
        var served = false
        while let chain = try queue.nextChain(context.memory, badChain: { error in
            badRequests += 1
            served = true
            logger.warning("virtio-rng: bad request: \(error)")
        }) {
            let wanted = min(chain.writableLength, Self.maxRequestBytes)
            guard rateLimiter.consume(bytes: UInt64(wanted)) else {
                queue.unpop()
                break
            }
            var writer = chain.writer(context.memory)
            var filled = 0
            pieces: for piece in writer.take(wanted) {
                var done = 0
                while done < piece.count {
                    let n = getrandom(piece.baseAddress! + done, piece.count - done, 0)
                    if n < 0 {
                        if errno == EINTR { continue }
                        logger.error("virtio-rng: getrandom failed (errno \(errno))")
                        filled += done
                        break pieces
                    }
                    done += n
                }
                filled += done
            }
            bytesServed += UInt64(filled)
            try queue.addUsed(context.memory, head: chain.head, length: UInt32(filled))
            served = true
        }
        if served { context.interrupt.signalUsed(queue, context.memory) }
    }
}
