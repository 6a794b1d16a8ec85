import Glibc
import Synchronization
import Testing
@testable import Devices
@testable import VMM

/// Firecracker's token bucket arithmetic, on a clock the test moves by hand.
@Suite struct TokenBucketTests {
    static let ms: UInt64 = 1_000_000

    func bucket(size: UInt64, burst: UInt64 = 0, refillMs: UInt64) -> TokenBucket {
        TokenBucket(TokenBucketConfig(size: size, oneTimeBurst: burst, refillTimeMs: refillMs)!, now: 0)
    }

    @Test func sizeOrRefillZeroMakesNoBucket() {
        #expect(TokenBucketConfig(size: 0, refillTimeMs: 100) == nil)
        #expect(TokenBucketConfig(size: 100, refillTimeMs: 0) == nil)
        #expect(TokenBucketConfig(size: 100, refillTimeMs: TokenBucketConfig.maxRefillTimeMs + 1) == nil)
        #expect(RateLimiterConfig(bandwidth: nil, ops: nil).isUnlimited)
    }

    @Test func refillsLinearlyWithoutDrift() {
        var b = bucket(size: 1000, refillMs: 1000)
        #expect(b.admits(1000))
        b.take(1000)
        #expect(!b.admits(1))
        // 1 token per ms: 999 steps of 1.5 ms add 1498.5 tokens, capped at 1000; the carried
        // fraction makes a run of small steps earn what one long step would.
        var small = bucket(size: 1000, refillMs: 1000)
        small.take(1000)
        var now: UInt64 = 0
        for _ in 0..<300 {
            now += 1_500_000
            small.refill(now: now)
        }
        #expect(small.budget == 450)
        b.refill(now: 450 * Self.ms)
        #expect(b.budget == 450)
        b.refill(now: 10_000 * Self.ms)
        #expect(b.budget == 1000)
    }

    @Test func oneTimeBurstIsSpentFirstAndNeverComesBack() {
        var b = bucket(size: 10, burst: 25, refillMs: 100)
        b.take(20)
        #expect(b.oneTimeBurst == 5 && b.budget == 10)
        b.take(12)  // 5 from the burst, 7 from the bucket
        #expect(b.oneTimeBurst == 0 && b.budget == 3)
        b.refill(now: 1000 * Self.ms)
        #expect(b.oneTimeBurst == 0 && b.budget == 10)
    }

    @Test func aRequestLargerThanTheBucketRunsIntoDebt() {
        var b = bucket(size: 100, refillMs: 100)  // 1 token per ms
        #expect(b.admits(350))
        b.take(350)
        #expect(b.budget == 0 && b.debt == 250)
        // Nothing is admitted until the debt is paid: 250 ms, then 10 more for 10 tokens.
        #expect(!b.admits(1) && !b.admits(1000))
        #expect(b.nanosUntilAdmits(10) == 260 * Self.ms)
        b.refill(now: 200 * Self.ms)
        #expect(b.debt == 50 && !b.admits(1))
        b.refill(now: 260 * Self.ms)
        #expect(b.debt == 0 && b.budget == 10 && b.admits(10) && !b.admits(11))
    }

    @Test func waitsAreRoundedUpAndGivingBackRepaysDebtFirst() {
        var b = bucket(size: 3, refillMs: 1)  // a token every 333,333.3 ns
        b.take(3)
        #expect(b.nanosUntilAdmits(1) == 333_334)
        b.refill(now: 333_333)
        #expect(!b.admits(1))
        b.refill(now: 333_334)
        #expect(b.admits(1))
        var d = bucket(size: 10, refillMs: 10)
        d.take(15)
        d.giveBack(8)
        #expect(d.debt == 0 && d.budget == 3)
    }

    @Test func extremeValuesNeitherTrapNorWrap() {
        var b = bucket(size: .max, burst: .max, refillMs: TokenBucketConfig.maxRefillTimeMs)
        b.take(.max)
        b.take(.max)
        b.refill(now: .max)
        #expect(b.budget > 0)
        #expect(b.admits(.max))
        var tiny = bucket(size: 1, refillMs: TokenBucketConfig.maxRefillTimeMs)
        tiny.take(.max)
        #expect(tiny.nanosUntilAdmits(1) == .max)
        tiny.refill(now: .max)
        tiny.giveBack(.max)
        #expect(tiny.budget <= 1)
    }
}

/// The limiter around the buckets: both must admit, a refusal arms the timer for when
/// they will, and a reconfiguration wakes a blocked device at once.
@Suite struct RateLimiterTests {
    final class ManualClock: Sendable {
        let now = Atomic<UInt64>(1_000)
        func advance(_ ns: UInt64) { now.wrappingAdd(ns, ordering: .relaxed) }
        var read: RateLimiter.Clock { { self.now.load(ordering: .relaxed) } }
    }

    /// Whether the limiter's timerfd expires within `ms`.
    func fires(_ limiter: RateLimiter, within ms: Int32) -> Bool {
        var p = pollfd(fd: limiter.timer.fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, ms) == 1
    }

    @Test func unlimitedAdmitsEverythingWithoutReadingTheLength() throws {
        let limiter = try RateLimiter(.unlimited)
        var lengthReads = 0
        func length() -> UInt64 {
            lengthReads += 1
            return 1 << 30
        }
        // (Outside #expect, which would evaluate the argument itself to print it.)
        var admitted = 0
        for _ in 0..<1000 where limiter.consume(bytes: length()) { admitted += 1 }
        #expect(admitted == 1000 && lengthReads == 0 && limiter.counters == RateLimiter.Counters())
        // An ops-only limiter does not read it either: the length would come from guest memory.
        let opsOnly = try RateLimiter(RateLimiterConfig(ops: TokenBucketConfig(size: 5, refillTimeMs: 1000)))
        let opsAdmitted = opsOnly.consume(bytes: length())
        #expect(opsAdmitted && lengthReads == 0)
    }

    @Test func bothBucketsMustAdmitAndNeitherIsChargedOnARefusal() throws {
        let clock = ManualClock()
        let config = RateLimiterConfig(bandwidth: TokenBucketConfig(size: 1000, refillTimeMs: 1000),
                                       ops: TokenBucketConfig(size: 2, refillTimeMs: 1000))
        let limiter = try RateLimiter(config, clock: clock.read)
        #expect(limiter.consume(bytes: 100))
        #expect(limiter.consume(bytes: 100))
        #expect(!limiter.consume(bytes: 100))  // ops ran out; 800 bytes are left
        #expect(limiter.isBlocked && limiter.counters.throttled == 1)
        // Blocked: refused without looking at the buckets; each refusal counts, as Firecracker's.
        #expect(!limiter.consume(bytes: 1))
        #expect(limiter.counters.throttled == 2)
        // The timer is armed for half a second (one op); on a real clock.
        #expect(!fires(limiter, within: 0))
        clock.advance(500_000_000)
        limiter.timerFired()
        #expect(!limiter.isBlocked && limiter.counters.timerEvents == 1)
        #expect(limiter.consume(bytes: 800))
        #expect(!limiter.consume(bytes: 0))
    }

    @Test func timerIsArmedForTheWaitAndReconfigureWakesAtOnce() throws {
        let limiter = try RateLimiter(RateLimiterConfig(ops: TokenBucketConfig(size: 1, refillTimeMs: 150)))
        #expect(limiter.consume(bytes: 0))
        #expect(!limiter.consume(bytes: 0))
        #expect(!fires(limiter, within: 50))
        #expect(fires(limiter, within: 2000))
        limiter.timerFired()
        #expect(limiter.consume(bytes: 0))
        // Blocked for ten minutes, then lifted: the timer fires now.
        limiter.reconfigure(RateLimiterConfig(ops: TokenBucketConfig(size: 1, refillTimeMs: 600_000)))
        #expect(limiter.consume(bytes: 0))
        #expect(!limiter.consume(bytes: 0))
        limiter.reconfigure(.unlimited)
        #expect(fires(limiter, within: 1000))
        limiter.timerFired()
        #expect(limiter.consume(bytes: 0) && limiter.config == .unlimited)
    }

    @Test func anUnchangedBucketKeepsItsStateAcrossAnUpdate() throws {
        let clock = ManualClock()
        let ops = TokenBucketConfig(size: 1, refillTimeMs: 1000)
        let limiter = try RateLimiter(RateLimiterConfig(ops: ops), clock: clock.read)
        #expect(limiter.consume(bytes: 0))
        let update = RateLimiterUpdate(bandwidth: .set(TokenBucketConfig(size: 10, refillTimeMs: 10)))
        limiter.apply(update)
        #expect(limiter.config.ops == ops && limiter.config.bandwidth?.size == 10)
        #expect(!limiter.consume(bytes: 1))  // the ops bucket is still empty
        #expect(RateLimiterUpdate(ops: .set(nil)).applied(to: limiter.config).ops == nil)
        // Giving a bucket again, with the same limits, starts it afresh: the way to clear a debt.
        limiter.apply(RateLimiterUpdate(ops: .set(ops)))
        limiter.timerFired()
        #expect(limiter.consume(bytes: 1))
    }
}
