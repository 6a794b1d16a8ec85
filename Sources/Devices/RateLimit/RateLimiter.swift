import Synchronization
import VMM

/// A device's rate limiter configuration: Firecracker's `{"bandwidth": …, "ops": …}`,
/// where a missing bucket limits nothing.
public struct RateLimiterConfig: Sendable, Equatable {
    /// Bytes.
    public var bandwidth: TokenBucketConfig?
    /// Requests (a block request, a frame, an entropy request).
    public var ops: TokenBucketConfig?

    public init(bandwidth: TokenBucketConfig? = nil, ops: TokenBucketConfig? = nil) {
        self.bandwidth = bandwidth
        self.ops = ops
    }

    public static let unlimited = RateLimiterConfig()
    public var isUnlimited: Bool { bandwidth == nil && ops == nil }
}

/// A live change (Firecracker's PATCH): each bucket is kept, removed or replaced.
public struct RateLimiterUpdate: Sendable, Equatable {
    public enum Bucket: Sendable, Equatable {
        case unchanged
        case set(TokenBucketConfig?)
    }

    public var bandwidth: Bucket
    public var ops: Bucket

    public init(bandwidth: Bucket = .unchanged, ops: Bucket = .unchanged) {
        self.bandwidth = bandwidth
        self.ops = ops
    }

    public func applied(to config: RateLimiterConfig) -> RateLimiterConfig {
        var result = config
        if case .set(let bucket) = bandwidth { result.bandwidth = bucket }
        if case .set(let bucket) = ops { result.ops = bucket }
        return result
    }
}

/// Firecracker's device rate limiter: a bandwidth and an ops bucket, both of which a
/// request must pass. A request refused sets the limiter blocked and arms its timer for
/// when the bucket will admit it; until then the device takes nothing more from the guest
/// (its queue waits, the tap is not read), so throttling costs no CPU. When the timer
/// fires the transport runs the queue again (`TimedQueue`).
///
/// `consume` runs on the event loop under the transport lock; `reconfigure` comes from
/// the API thread, hence the Mutex. Neither allocates.
public final class RateLimiter: Sendable {
    public typealias Clock = @Sendable () -> UInt64

    public struct Counters: Sendable, Equatable {
        /// Refusals, one per request turned away, also while already blocked (Firecracker's
        /// `*_rate_limiter_throttled`).
        public var throttled: UInt64 = 0
        /// Timer expiries that let work resume (`*_rate_limiter_event_count`).
        public var timerEvents: UInt64 = 0

        public init(throttled: UInt64 = 0, timerEvents: UInt64 = 0) {
            self.throttled = throttled
            self.timerEvents = timerEvents
        }
    }

    private struct State {
        var config: RateLimiterConfig
        var bandwidth: TokenBucket?
        var ops: TokenBucket?
        var blocked = false
        var counters = Counters()
    }

    /// Fires when a blocked limiter may admit again; the owner watches it on the event loop.
    public let timer: TimerFd
    private let clock: Clock
    private let state: Mutex<State>

    public init(_ config: RateLimiterConfig = .unlimited, clock: @escaping Clock = ProcessClock.monotonicNanos) throws {
        timer = try TimerFd()
        self.clock = clock
        let now = clock()
        state = Mutex(State(config: config, bandwidth: config.bandwidth.map { TokenBucket($0, now: now) },
                            ops: config.ops.map { TokenBucket($0, now: now) }))
    }

    public var config: RateLimiterConfig { state.withLock { $0.config } }
    public var counters: Counters { state.withLock { $0.counters } }
    public var isBlocked: Bool { state.withLock { $0.blocked } }

    /// Takes `bytes` from the bandwidth bucket and `ops` from the ops bucket, or nothing.
    /// `bytes` is evaluated only when a bandwidth bucket exists (it may read guest memory).
    public func consume(bytes: @autoclosure () -> UInt64, ops: UInt64 = 1) -> Bool {
        state.withLock { s in
            if s.blocked {
                s.counters.throttled += 1
                return false
            }
            if s.bandwidth == nil && s.ops == nil { return true }
            let now = clock()
            let byteCount = s.bandwidth == nil ? 0 : bytes()
            s.bandwidth?.refill(now: now)
            s.ops?.refill(now: now)
            let bytesAdmitted = s.bandwidth?.admits(byteCount) ?? true
            let opsAdmitted = s.ops?.admits(ops) ?? true
            if bytesAdmitted && opsAdmitted {
                s.bandwidth?.take(byteCount)
                s.ops?.take(ops)
                return true
            }
            let wait = max(s.bandwidth?.nanosUntilAdmits(byteCount) ?? 0, s.ops?.nanosUntilAdmits(ops) ?? 0)
            s.blocked = true
            s.counters.throttled += 1
            timer.arm(afterNs: wait)
            return false
        }
    }

    /// Gives back what `consume` took for work that could not be done after all (Firecracker's
    /// manual replenish), so that the retry is not charged twice.
    public func giveBack(bytes: UInt64, ops: UInt64 = 1) {
        state.withLock { s in
            s.bandwidth?.giveBack(bytes)
            s.ops?.giveBack(ops)
        }
    }

    /// The timer fired (event loop): the device may try again.
    public func timerFired() {
        state.withLock { s in
            timer.consume()
            guard s.blocked else { return }
            s.blocked = false
            s.counters.timerEvents += 1
        }
    }

    /// Firecracker's PATCH: every bucket the update gives starts afresh (full, no debt, its
    /// burst back), even with the limits it had, so re-sending a limiter is how an operator
    /// resets one; a bucket it leaves out keeps its state. A blocked device is woken at once
    /// to try under the new limits.
    public func apply(_ update: RateLimiterUpdate) {
        state.withLock { s in
            let now = clock()
            if case .set(let bucket) = update.bandwidth { s.bandwidth = bucket.map { TokenBucket($0, now: now) } }
            if case .set(let bucket) = update.ops { s.ops = bucket.map { TokenBucket($0, now: now) } }
            s.config = update.applied(to: s.config)
            if s.blocked { timer.arm(afterNs: 1) }
        }
    }

    /// Replaces both buckets with fresh ones for `config`.
    public func reconfigure(_ config: RateLimiterConfig) {
        apply(RateLimiterUpdate(bandwidth: .set(config.bandwidth), ops: .set(config.ops)))
    }
}

extension RateLimiter {
    /// The limiter's timer, running `queue` again when it fires.
    public func timedQueue(_ queue: Int) -> TimedQueue {
        TimedQueue(timer: timer, queue: queue) { [self] in timerFired() }
    }
}
