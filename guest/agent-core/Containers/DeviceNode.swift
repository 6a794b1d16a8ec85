#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import OCI

/// A `linux.devices` entry made with mknod once the container's root is entered (so no
/// symlink in the rootfs or in a volume can send it outside), after its mounts; a file
/// already there is kept, as runc does. In a VM the major and minor numbers name the guest
/// kernel's devices.
struct DeviceNode: Equatable {
    /// The path in the container.
    var target: String
    /// The file type bits (S_IFCHR, S_IFBLK, S_IFIFO) and the permission bits.
    var mode: UInt32
    var major: UInt32
    var minor: UInt32
    var uid: UInt32
    var gid: UInt32

    /// A spec lists a handful; a spec with thousands is refused before anything is made.
    static let maxCount = 256

    static func plan(_ devices: [Spec.Device]) throws(AgentError) -> [DeviceNode] {
        guard devices.count <= maxCount else { throw .invalid("\(devices.count) devices: at most \(maxCount)") }
        return try devices.map { device throws(AgentError) in
            let path = device.path
            guard path.hasPrefix("/"), !path.utf8.contains(0), path != "/" else { throw .invalid("device path must be absolute: \(path)") }
            let type: UInt32
            switch device.type {
            case "c", "u": type = UInt32(S_IFCHR)
            case "b": type = UInt32(S_IFBLK)
            case "p": type = UInt32(S_IFIFO)
            default: throw .invalid("device \(path): type '\(device.type)' is not c, u, b or p")
            }
            var major: UInt32 = 0, minor: UInt32 = 0
            if type != UInt32(S_IFIFO) {
                // Linux's device numbers: 12-bit major, 20-bit minor.
                guard let m = device.major, let n = device.minor, (0...0xfff).contains(m), (0...0xf_ffff).contains(n) else {
                    throw .invalid("device \(path): major and minor are required (0-4095, 0-1048575)")
                }
                (major, minor) = (UInt32(m), UInt32(n))
            }
            let permissions = device.fileMode ?? 0o666
            guard permissions & ~0o7777 == 0 else { throw .invalid("device \(path): fileMode \(permissions) has bits past 07777") }
            guard !path.split(separator: "/").contains("..") else { throw .invalid("device path must not contain '..': \(path)") }
            return DeviceNode(target: path, mode: type | permissions, major: major, minor: minor,
                              uid: device.uid ?? 0, gid: device.gid ?? 0)
        }
    }
}
