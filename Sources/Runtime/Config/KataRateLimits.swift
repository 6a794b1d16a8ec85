import Devices

/// Kata's rate limiter keys, as its Firecracker and Cloud Hypervisor drivers turn them into
/// token buckets that refill every second:
/// - `rx_rate_limiter_max_rate`, `tx_rate_limiter_max_rate` (Firecracker's): bits per
///   second for one direction of every NIC;
/// - `net_rate_limiter_{bw,ops}_{max_rate,one_time_burst}` (Cloud Hypervisor's): both
///   directions, bits or operations per second and a one-time burst in the same units;
/// - `disk_rate_limiter_{bw,ops}_{max_rate,one_time_burst}`: every disk of the sandbox.
/// Bits become bytes (divided by 8, rounded up); Kata's Firecracker driver then also reads
/// the two direction keys in 1000-based units and rescales them to 1024-based ones
/// (`rescaledTo1024`), so 80,000,000 bits/s is 10 MiB/s there, and here. 0 means no limit.
struct KataRateLimits: Sendable, Equatable {
    static let netKeys = ["net_rate_limiter_bw_max_rate", "net_rate_limiter_bw_one_time_burst",
                          "net_rate_limiter_ops_max_rate", "net_rate_limiter_ops_one_time_burst"]
    static let diskKeys = ["disk_rate_limiter_bw_max_rate", "disk_rate_limiter_bw_one_time_burst",
                           "disk_rate_limiter_ops_max_rate", "disk_rate_limiter_ops_one_time_burst"]
    static let directionKeys = ["rx_rate_limiter_max_rate", "tx_rate_limiter_max_rate"]
    static var keys: Set<String> { Set(netKeys + diskKeys + directionKeys) }

    /// The values read, by key.
    var values: [String: UInt64] = [:]

    static let refillTimeMs: UInt64 = 1000

    static func bytes(bits: UInt64) -> UInt64 { bits / 8 + (bits % 8 == 0 ? 0 : 1) }

    /// Each factor of 1000 in `value` becomes 1024 (10,000,000 -> 10,485,760), saturating.
    static func rescaledTo1024(_ value: UInt64) -> UInt64 {
        guard value >= 1000 else { return value }
        let (scaled, overflow) = rescaledTo1024(value / 1000).multipliedReportingOverflow(by: 1024)
        let (sum, carry) = scaled.addingReportingOverflow(value % 1000)
        return overflow || carry ? .max : sum
    }

    /// One device's limiter from a `<prefix>_rate_limiter_{bw,ops}_*` family.
    private func limiter(_ prefix: String) -> RateLimiterConfig {
        func value(_ suffix: String) -> UInt64 { values["\(prefix)_rate_limiter_\(suffix)"] ?? 0 }
        let bandwidth = TokenBucketConfig(size: Self.bytes(bits: value("bw_max_rate")),
                                          oneTimeBurst: Self.bytes(bits: value("bw_one_time_burst")),
                                          refillTimeMs: Self.refillTimeMs)
        let ops = TokenBucketConfig(size: value("ops_max_rate"), oneTimeBurst: value("ops_one_time_burst"),
                                    refillTimeMs: Self.refillTimeMs)
        return RateLimiterConfig(bandwidth: bandwidth, ops: ops)
    }

    var disk: RateLimiterConfig { limiter("disk") }

    /// A NIC's receive (`rx`) or transmit (`tx`) limiter: the `net_` family, with the
    /// direction's own bandwidth key taking precedence where it is set.
    func net(_ direction: String) -> RateLimiterConfig {
        var config = limiter("net")
        let rate = values["\(direction)_rate_limiter_max_rate"] ?? 0
        if rate > 0 {
            config.bandwidth = TokenBucketConfig(size: Self.rescaledTo1024(Self.bytes(bits: rate)), refillTimeMs: Self.refillTimeMs)
        }
        return config
    }
}
