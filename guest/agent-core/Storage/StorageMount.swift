#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import AgentProtocol

/// Mounts one `Grpc_Storage` (a container rootfs or volume) in the guest:
/// "blk": a virtio-blk disk found by its serial (/sys/block/*/serial, which is the
/// virtio-blk ID the VMM gives the drive) or by its /dev path; waits for it to appear;
/// "bind": a guest directory bind-mounted; "virtio-fs": a virtio-fs device by its tag
/// (the sandbox's share); "local": an empty directory.
enum StorageMount {
    /// How long to wait for a block device to show up (hotplug, slow guests).
    static let deviceWaitMilliseconds = 30_000

    /// Mounts and returns the mount point (to unmount later), or nil for "local".
    static func mount(_ storage: Grpc_Storage) throws(AgentError) -> String? {
        let target = storage.mountPoint
        guard target.hasPrefix("/"), !target.split(separator: "/").contains("..") else {
            throw .invalid("storage mount_point must be an absolute path without '..': \(target)")
        }
        try makeDirectories(target)
        let options = MountOptions(storage.options)
        switch storage.driver {
        case "blk":
            let device = try findBlockDevice(storage.source)
            let fstype = storage.fstype.isEmpty ? "ext4" : storage.fstype
            guard Glibc.mount(device, target, fstype, options.flags, options.dataString) == 0 else {
                throw .errno("mount \(device) (\(fstype)) on \(target)")
            }
            return target
        case "bind":
            guard storage.source.hasPrefix("/") else { throw .invalid("bind storage needs an absolute source") }
            guard Glibc.mount(storage.source, target, nil, UInt(MS_BIND | MS_REC), nil) == 0 else {
                throw .errno("bind \(storage.source) on \(target)")
            }
            if options.isReadOnly {
                guard Glibc.mount(nil, target, nil, UInt(MS_REMOUNT | MS_BIND | MS_RDONLY), nil) == 0 else {
                    throw .errno("remount \(target) read-only")
                }
            }
            return target
        case "virtio-fs":
            // The source is the device's tag.
            guard !storage.source.isEmpty, storage.source.utf8.count <= 36 else { throw .invalid("virtio-fs storage needs a tag of 1 to 36 bytes") }
            guard Glibc.mount(storage.source, target, "virtiofs", options.flags, options.dataString) == 0 else {
                throw .errno("mount virtio-fs \(storage.source) on \(target)")
            }
            return target
        case "local":
            return nil
        default:
            throw .invalid("unknown storage driver \(storage.driver)")
        }
    }

    static func unmount(_ target: String) {
        if umount2(target, Int32(MNT_DETACH)) != 0 && errno != EINVAL && errno != ENOENT {
            AgentLog.write("kata-agent: error: unmount \(target): \(String(cString: strerror(errno)))\n")
        }
    }

    /// The /dev path of the disk whose serial is `source` (or `source` itself if it is a
    /// /dev path), waiting for it to appear.
    static func findBlockDevice(_ source: String) throws(AgentError) -> String {
        guard !source.isEmpty, !source.contains("..") else { throw .invalid("blk storage needs a source") }
        var waited = 0
        while true {
            if source.hasPrefix("/dev/") {
                if access(source, F_OK) == 0 { return source }
            } else if let name = deviceWithSerial(source) {
                return "/dev/" + name
            }
            guard waited < deviceWaitMilliseconds else {
                throw .notFound("no block device with serial or path \(source)")
            }
            usleep(50_000)
            waited += 50
        }
    }

    private static func deviceWithSerial(_ serial: String) -> String? {
        guard let directory = opendir("/sys/block") else { return nil }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasPrefix(".") { continue }
            if readSmallFile("/sys/block/\(name)/serial")?.trimmingWhitespace() == serial { return name }
        }
        return nil
    }
}
