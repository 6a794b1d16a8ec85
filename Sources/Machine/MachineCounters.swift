import Devices
import VMM

/// One reading of a running microVM's counters (vCPU exits by kind, bytes and requests per
/// device): what the metrics writer turns into Firecracker-shaped JSON.
public struct MachineCounters: Sendable, Equatable {
    public struct Disk: Sendable, Equatable {
        public var id: String
        public var readBytes: UInt64
        public var writeBytes: UInt64
        public var requests: UInt64
        public var failedRequests: UInt64
        public var rateLimiter = RateLimiter.Counters()
    }

    public struct Net: Sendable, Equatable {
        public var id: String
        public var rxBytes: UInt64
        public var txBytes: UInt64
        public var rxPackets: UInt64
        public var txPackets: UInt64
        public var rxDropped: UInt64
        public var txDropped: UInt64
        public var rxRateLimiter = RateLimiter.Counters()
        public var txRateLimiter = RateLimiter.Counters()
    }

    public struct Entropy: Sendable, Equatable {
        public var bytes: UInt64
        public var badRequests: UInt64
        public var rateLimiter: RateLimiter.Counters
    }

    /// Summed over all vCPUs, keyed by metric name (`exit_io_in`, ...).
    public var vcpuExits: [String: UInt64] = [:]
    public var disks: [Disk] = []
    public var nets: [Net] = []
    /// nil: the VM has no entropy device.
    public var entropy: Entropy?
    /// nil: the VM has no balloon.
    public var balloon: VirtioBalloon.Counters?
    /// Summed over the interfaces that reach the metadata service; nil: none does.
    public var mmds: MmdsCounters?

    public init() {}

    /// Every key `vcpuExits` can hold, so that a report can list the kinds no vCPU has hit yet.
    public static let vcpuExitNames = VcpuExitCounters.Kind.allCases.map(\.metricName)
}
