import Foundation
import Glibc
import LinuxSupport

/// The host side of a sandbox's virtio-fs share: one directory, which virtiofsd serves,
/// with the container's rootfs and directory volumes bind-mounted under it. The directory
/// is first bind-mounted on itself and made private, so the binds under it neither reach
/// the host's other mount namespaces nor pick up theirs. Removal unmounts the whole tree
/// and then deletes only empty directories: a mount that will not go keeps its data.
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
        guard readOnly else { return }
        guard mount(nil, target, nil, UInt(MS_REMOUNT | MS_BIND | MS_RDONLY), nil) == 0 else {
            let error = SystemError("remount \(target) read-only")
            umount2(target, Int32(MNT_DETACH))
            throw error
        }
    }

    /// Unmounts everything at and below `path`, then removes its directories if they are
    /// empty. Throws, and leaves the files alone, when a mount remains or a directory
    /// holds anything.
    static func remove(at path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        for point in MountTable.mountPoints(under: path) {
            if umount2(point, Int32(MNT_DETACH)) != 0 && errno != EINVAL && errno != ENOENT {
                throw SystemError("unmount \(point)")
            }
        }
        let remaining = MountTable.mountPoints(under: path)
        guard remaining.isEmpty else {
            throw RuntimeError("\(path): still mounted after unmounting: \(remaining.joined(separator: ", "))")
        }
        try removeEmptyDirectories(path)
    }

    /// rmdir, depth first: never a file, never through a symlink.
    private static func removeEmptyDirectories(_ directory: String) throws {
        var info = stat()
        guard lstat(directory, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw RuntimeError("\(directory): not a directory; left in place") }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            try removeEmptyDirectories(directory + "/" + entry)
        }
        guard rmdir(directory) == 0 else { throw SystemError("rmdir \(directory)") }
    }
}
