/// What the metadata service's stack has seen, for Firecracker's `mmds` metrics.
public struct MmdsCounters: Sendable, Equatable {
    public var framesIn: UInt64 = 0
    /// Frames for the service that were malformed, or for a protocol other than TCP.
    public var dropped: UInt64 = 0
    public var framesOut: UInt64 = 0
    public var bytesOut: UInt64 = 0
    public var requests: UInt64 = 0
    public var resets: UInt64 = 0
    public var connectionsCreated: UInt64 = 0
    public var connectionsDestroyed: UInt64 = 0

    public init() {}

    public static func + (a: MmdsCounters, b: MmdsCounters) -> MmdsCounters {
        var sum = a
        sum.framesIn += b.framesIn
        sum.dropped += b.dropped
        sum.framesOut += b.framesOut
        sum.bytesOut += b.bytesOut
        sum.requests += b.requests
        sum.resets += b.resets
        sum.connectionsCreated += b.connectionsCreated
        sum.connectionsDestroyed += b.connectionsDestroyed
        return sum
    }
}
