/// Summary of repeated samples: what every figure in kata-bench reports, so that runs on
/// noisy shared machines are read by their distribution, not one number.
public struct Statistics: Codable, Equatable, Sendable {
    public var count: Int
    public var min: Double
    public var median: Double
    public var p90: Double
    public var max: Double
    public var mean: Double

    /// nil for no samples. Percentiles use the nearest-rank method on sorted samples.
    public init?(_ samples: [Double]) {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        count = sorted.count
        min = sorted[0]
        max = sorted[sorted.count - 1]
        mean = sorted.reduce(0, +) / Double(sorted.count)
        median = sorted.count % 2 == 1 ? sorted[sorted.count / 2]
            : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        p90 = Self.percentile(sorted, 0.9)
    }

    /// Nearest-rank percentile of already sorted samples.
    public static func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return sorted[Swift.max(0, Swift.min(sorted.count - 1, rank - 1))]
    }
}
