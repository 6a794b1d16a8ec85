import Foundation
import Glibc
import LinuxSupport

/// The host side of a sandbox's virtio-fs share: one directory, which virtiofsd serves,
/// with the container's rootfs and directory volumes bind-mounted under it. The directory
/// is first bind-mounted on itself and made private, so the binds under it do not reach
/// the host's other mount namespaces; each bind is made a slave, so that unmounting it
/// never propagates back to the host's mounts at its source. Once bound, the share's own
/// directory is made read-only (`seal`): a guest writes only inside its binds, never into
/// the host's /run. Removal unmounts the whole tree and then deletes only empty
/// directories that are not mounts: a mount that will not go keeps its data.
struct SharedDirectory {
    let path: String

    /// Creates the directory (0700, the caller's) and its private self-bind.
    static func create(at path: String) throws -> SharedDirectory {
        guard mkdir(path, 0o700) == 0 || errno == EEXIST else { throw SystemError("mkdir \(path)") }
        guard mount(path, path, nil, UInt(MS_BIND), nil) == 0 else { throw SystemError("bind \(path) on itself") }
        guard mount(nil, path, nil, UInt(MS_PRIVATE), nil) == 0 else {
            let error = SystemError("make \(path) a private mount")
            umount2(path, Int32(MNT_DETACH))
            throw error
        }
        return SharedDirectory(path: path)
    }

    /// Binds the host directory `source` at `name` (a relative path below the share).
    /// `recursive`: its submounts too (the spec's rbind). A read-only bind is remounted
    /// read-only on the host, so the guest cannot write it whatever its kernel does.
    func bind(_ source: String, at name: String, readOnly: Bool, recursive: Bool) throws {
        let target = path + "/" + name
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        guard mount(source, target, nil, UInt(MS_BIND) | (recursive ? UInt(MS_REC) : 0), nil) == 0 else {
            throw SystemError("bind \(source) on \(target)")
        }
        do {
            // A bind of a shared mount joins its peer group: as a slave it still sees the
            // host's new mounts, and its own unmounts stay here.
            guard mount(nil, target, nil, UInt(MS_REC | MS_SLAVE), nil) == 0 else { throw SystemError("make \(target) a slave mount") }
            guard readOnly else { return }
            // Every mount of an rbind, not only the top one.
            for point in (MountTable.mountPoints(under: target) ?? [target]).reversed() {
                guard mount(nil, point, nil, UInt(MS_REMOUNT | MS_BIND | MS_RDONLY), nil) == 0 else {
                    throw SystemError("remount \(point) read-only")
                }
            }
        } catch {
            umount2(target, Int32(MNT_DETACH))
            throw error
        }
    }

    /// The share's own directory read-only, its binds unchanged (each mount has its own
    /// flags): done after the last bind, before virtiofsd starts.
    func seal() throws {
        guard mount(nil, path, nil, UInt(MS_REMOUNT | MS_BIND | MS_RDONLY), nil) == 0 else {
            throw SystemError("remount \(path) read-only")
        }
    }

    /// Unmounts everything at and below `path`, then removes its directories if they are
    /// empty. Throws, and leaves the files alone, when a mount remains or a directory
    /// holds anything.
    static func remove(at path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        guard let mounted = MountTable.mountPoints(under: path) else { throw RuntimeError("\(path): the mount table cannot be read; left in place") }
        for point in mounted {
            if umount2(point, Int32(MNT_DETACH)) != 0 && errno != EINVAL && errno != ENOENT {
                throw SystemError("unmount \(point)")
            }
        }
        guard MountTable.isUnmounted(path) else {
            throw RuntimeError("\(path): still mounted after unmounting: \((MountTable.mountPoints(under: path) ?? []).joined(separator: ", "))")
        }
        try removeEmptyDirectories(MountTable.canonical(path))
    }

    /// rmdir, depth first: never a file, never through a symlink, never into a mount.
    private static func removeEmptyDirectories(_ directory: String) throws {
        var info = stat()
        guard lstat(directory, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw RuntimeError("\(directory): not a directory; left in place") }
        guard MountTable.isUnmounted(directory) else { throw RuntimeError("\(directory): a mount; left in place") }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            try removeEmptyDirectories(directory + "/" + entry)
        }
        guard rmdir(directory) == 0 else { throw SystemError("rmdir \(directory)") }
    }
}
