/// Numbers from the virtio 1.2 specification that the transport and devices share.
public enum VirtioDeviceType: UInt32, Sendable {
    case net = 1
    case block = 2
    case rng = 4
    case balloon = 5
    case vsock = 19
    case fs = 26
}

/// Feature bits common to all devices (virtio 1.2, 6 "Reserved Feature Bits").
public enum VirtioFeature {
    public static let ringIndirectDescriptors: UInt64 = 1 << 28
    public static let ringEventIndex: UInt64 = 1 << 29
    public static let version1: UInt64 = 1 << 32
}

/// Device status field bits (virtio 1.2, 2.1).
public enum VirtioStatus {
    public static let acknowledge: UInt32 = 1
    public static let driver: UInt32 = 2
    public static let driverOk: UInt32 = 4
    public static let featuresOk: UInt32 = 8
    public static let deviceNeedsReset: UInt32 = 0x40
    public static let failed: UInt32 = 0x80
}
