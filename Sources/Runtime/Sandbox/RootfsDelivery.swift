/// How a container's rootfs reaches the guest, chosen once at create and recorded, so that
/// the monitor builds the VM the same way.
public enum RootfsDelivery: String, Codable, Sendable {
    /// The agent runs on this host (`debug_agent_socket`): the bundle's directory as it is.
    case hostDirectory
    /// A rootfs that is a block device (a devicemapper snapshot), handed over as the disk.
    case blockDevice
    /// An ext4 copy of the directory on virtio-blk (`shared_fs = "none"`).
    case ext4Image
    /// The directory itself, live, in the sandbox's virtio-fs share.
    case virtioFs

    static func choose(rootfs: String, debugAgent: Bool, sharedFs: RuntimeConfiguration.SharedFs,
                       disableBlockDeviceUse: Bool) throws -> RootfsDelivery {
        if debugAgent { return .hostDirectory }
        if RootfsImage.isBlockDevice(rootfs) {
            guard !disableBlockDeviceUse else {
                throw RuntimeError("the rootfs \(rootfs) is a block device, which disable_block_device_use keeps from the guest and virtio-fs cannot share")
            }
            return .blockDevice
        }
        if sharedFs == .virtioFs { return .virtioFs }
        guard !disableBlockDeviceUse else {
            throw RuntimeError("disable_block_device_use: the rootfs would then go over virtio-fs, but shared_fs is none (or virtio_fs_daemon is missing)")
        }
        return .ext4Image
    }

    /// Whether the VM gets the rootfs as its disk.
    var usesDisk: Bool { self == .blockDevice || self == .ext4Image }
}
