/// What a device counts for the VMM's metrics. One reading per device kind, so that the
/// machine builds its report from whatever device it holds without knowing the concrete type.
public enum DeviceCounters: Sendable, Equatable {
    case block(VirtioBlock.Counters)
    case net(VirtioNet.Counters)
    case rng(VirtioRng.Counters)
    case balloon(VirtioBalloon.Counters)
    /// The device counts nothing the metrics report (vsock, virtio-fs).
    case none
}

/// A device that reports counters. Every `VirtioDevice` is one; those without counters
/// report `.none` through the default.
public protocol DeviceCountersSource: AnyObject {
    /// A consistent reading; the caller holds the transport lock, as for any device call.
    var deviceCounters: DeviceCounters { get }
}

extension DeviceCountersSource {
    public var deviceCounters: DeviceCounters { .none }
}
