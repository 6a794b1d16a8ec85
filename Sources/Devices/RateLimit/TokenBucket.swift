/// One of a rate limiter's two buckets, as Firecracker defines it: `size` tokens (bytes or
/// operations) that refill from empty to full in `refillTimeMs`, plus `oneTimeBurst` extra
/// tokens that are spent first and never come back.
public struct TokenBucketConfig: Sendable, Equatable {
    public var size: UInt64
    public var oneTimeBurst: UInt64
    public var refillTimeMs: UInt64

    /// Longer refill times would overflow the nanosecond arithmetic (about 31 years).
    public static let maxRefillTimeMs: UInt64 = 1_000_000_000_000

    /// nil where Firecracker makes no bucket: a size or refill time of 0 limits nothing.
    public init?(size: UInt64, oneTimeBurst: UInt64 = 0, refillTimeMs: UInt64) {
        guard size > 0, refillTimeMs > 0, refillTimeMs <= Self.maxRefillTimeMs else { return nil }
        self.size = size
        self.oneTimeBurst = oneTimeBurst
        self.refillTimeMs = refillTimeMs
    }

    var refillNs: UInt64 { refillTimeMs * 1_000_000 }
}

/// A bucket's state. Refill is computed, not timed: each use adds what the time since the
/// last one earned, with the fraction of a token carried over so that nothing drifts. A
/// request larger than the whole bucket is let through when nothing is owed, and what it
/// took beyond the budget is a debt that later refills pay first; so a guest that only
/// sends huge requests still gets exactly the configured rate. All arithmetic is
/// full-width or saturating: no configuration or guest length can make it trap.
struct TokenBucket: Sendable {
    let config: TokenBucketConfig
    private(set) var budget: UInt64
    private(set) var oneTimeBurst: UInt64
    private(set) var debt: UInt64 = 0
    private var lastRefill: UInt64
    /// The fraction of a token earned but not yet counted, in token-nanoseconds (< refillNs).
    private var carry: UInt64 = 0

    init(_ config: TokenBucketConfig, now: UInt64) {
        self.config = config
        budget = config.size
        oneTimeBurst = config.oneTimeBurst
        lastRefill = now
    }

    mutating func refill(now: UInt64) {
        guard now > lastRefill else { return }
        let elapsed = now - lastRefill
        lastRefill = now
        let product = elapsed.multipliedFullWidth(by: config.size)
        let (low, overflow) = product.low.addingReportingOverflow(carry)
        let high = product.high + (overflow ? 1 : 0)  // high <= 2^64 - 2 before this
        var earned: UInt64
        if high >= config.refillNs {
            earned = .max
            carry = 0
        } else {
            (earned, carry) = config.refillNs.dividingFullWidth((high, low))
        }
        let paid = min(debt, earned)
        debt -= paid
        earned -= paid
        let (sum, full) = budget.addingReportingOverflow(earned)
        budget = full ? config.size : min(config.size, sum)
        if budget == config.size { carry = 0 }
    }

    /// What the regular bucket must supply for `tokens`, after the one-time burst.
    private func regularPart(_ tokens: UInt64) -> UInt64 { tokens - min(oneTimeBurst, tokens) }

    func admits(_ tokens: UInt64) -> Bool {
        let rest = regularPart(tokens)
        return rest == 0 || (debt == 0 && (rest <= budget || rest > config.size))
    }

    /// Takes `tokens`; only after `admits` said yes.
    mutating func take(_ tokens: UInt64) {
        let rest = regularPart(tokens)
        oneTimeBurst -= tokens - rest
        if rest <= budget {
            budget -= rest
        } else {
            debt = rest - budget
            budget = 0
        }
    }

    /// Returns tokens taken for work that did not happen after all (a full tap).
    mutating func giveBack(_ tokens: UInt64) {
        let repaid = min(debt, tokens)
        debt -= repaid
        budget += min(tokens - repaid, config.size - budget)
    }

    /// How long until `admits(tokens)` can be true, rounded up to a whole nanosecond.
    func nanosUntilAdmits(_ tokens: UInt64) -> UInt64 {
        guard !admits(tokens) else { return 0 }
        let rest = regularPart(tokens)
        let shortfall = rest > config.size ? 0 : rest - min(rest, budget)
        let (needed, overflow) = debt.addingReportingOverflow(shortfall)
        guard !overflow else { return .max }
        let product = needed.multipliedFullWidth(by: config.refillNs)
        guard product.high < config.size else { return .max }
        let (quotient, remainder) = config.size.dividingFullWidth(product)
        return remainder > 0 && quotient < .max ? quotient + 1 : quotient
    }
}
