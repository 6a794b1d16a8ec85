import Devices

/// Firecracker's `RateLimiter` object, in drives, network interfaces and entropy:
/// `{"bandwidth": TokenBucket, "ops": TokenBucket}`, each bucket `{"size", "one_time_burst",
/// "refill_time"}` (tokens, tokens, milliseconds). Absent, null and `{}` limit nothing, as
/// does a bucket of size 0 or refill time 0 (Kata's driver always sends `{}`).
enum RateLimiterBody {
    static let fields = ["bandwidth", "ops"]
    static let bucketFields = ["size", "one_time_burst", "refill_time"]

    /// The limiter of a PUT (or the config file): a fresh configuration.
    static func parse(_ object: StrictObject, key: String) throws -> RateLimiterConfig {
        try update(object, key: key)?.applied(to: .unlimited) ?? .unlimited
    }

    /// The limiter of a PATCH: nil when the body has none; a bucket the body leaves out is
    /// kept as it is, one it gives (even limiting nothing) replaces the old one.
    static func update(_ object: StrictObject, key: String) throws -> RateLimiterUpdate? {
        guard let value = object.value(key) else { return nil }
        let limiter = try StrictObject(value, path: object.name(key), allowed: fields)
        return RateLimiterUpdate(bandwidth: try bucket(limiter, "bandwidth"), ops: try bucket(limiter, "ops"))
    }

    private static func bucket(_ limiter: StrictObject, _ key: String) throws -> RateLimiterUpdate.Bucket {
        guard let value = limiter.value(key) else { return .unchanged }
        let bucket = try StrictObject(value, path: limiter.name(key), allowed: bucketFields)
        let size = try bucket.int(required: "size", in: 0...Int64.max)
        let burst = try bucket.int("one_time_burst", in: 0...Int64.max) ?? 0
        let refill = try bucket.int(required: "refill_time", in: 0...Int64(TokenBucketConfig.maxRefillTimeMs))
        return .set(TokenBucketConfig(size: UInt64(size), oneTimeBurst: UInt64(burst), refillTimeMs: UInt64(refill)))
    }

    /// What GET /vm/config shows: null when nothing is limited.
    static func describe(_ config: RateLimiterConfig) -> JSONValue {
        guard !config.isUnlimited else { return .null }
        func bucket(_ b: TokenBucketConfig?) -> JSONValue {
            guard let b else { return .null }
            return .object(["size": .int(Int64(b.size)), "one_time_burst": .int(Int64(b.oneTimeBurst)),
                            "refill_time": .int(Int64(b.refillTimeMs))])
        }
        return .object(["bandwidth": bucket(config.bandwidth), "ops": bucket(config.ops)])
    }
}
