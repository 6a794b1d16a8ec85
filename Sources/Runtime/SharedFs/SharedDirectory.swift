import Foundation
import Glibc
import LinuxSupport

/// The host side of a sandbox's virtio-fs share, Kata's layout: binds are made in a
/// directory of their own (`<path>-binds`, bound on itself, private, then shared), and
/// virtiofsd serves `<path>`, a read-only bind of it that is its slave. A bind made in
/// the binds directory after virtiofsd started reaches virtiofsd's mount namespace by
/// propagation, so containers and volumes can join a running sandbox; an unmount there
/// leaves it the same way. Nothing propagates back to the host's other mount namespaces.
/// Each bind is made a slave of its source, so unmounting it never reaches the host's
/// mounts. A read-only bind is made read-only in a private staging directory
/// (`<path>-staging`) before it is bound into the share, because a remount does not
/// propagate: its copies are read-only from the start. A guest writes only inside its
/// binds, never into the share's own directory. Removal unmounts the whole tree and then
/// deletes only empty directories that are not mounts: a mount that will not go keeps
/// its data.
struct SharedDirectory {
    let path: String
    var bindsPath: String { Self.bindsPath(path) }
    var stagingPath: String { Self.stagingPath(path) }

    static func bindsPath(_ path: String) -> String { path + "-binds" }
    static func stagingPath(_ path: String) -> String { path + "-staging" }

    /// Creates the three directories (0700, the caller's) and their mounts.
    static func create(at path: String) throws -> SharedDirectory {
        let share = SharedDirectory(path: path)
        do {
            try share.makeOwnMount(share.bindsPath, propagation: [UInt(MS_PRIVATE), UInt(MS_SHARED)])
            try share.makeOwnMount(share.stagingPath, propagation: [UInt(MS_PRIVATE)])
            guard mkdir(path, 0o700) == 0 || errno == EEXIST else { throw SystemError("mkdir \(path)") }
            guard mount(share.bindsPath, path, nil, UInt(MS_BIND), nil) == 0 else { throw SystemError("bind \(share.bindsPath) on \(path)") }
            guard mount(nil, path, nil, UInt(MS_SLAVE), nil) == 0 else { throw SystemError("make \(path) a slave mount") }
            guard mount(nil, path, nil, UInt(MS_REMOUNT | MS_BIND | MS_RDONLY), nil) == 0 else {
                throw SystemError("remount \(path) read-only")
            }
        } catch {
            try? Self.remove(at: path)
            throw error
        }
        return share
    }

    /// `directory` bound on itself with the given propagation changes, in order.
    private func makeOwnMount(_ directory: String, propagation: [UInt]) throws {
        guard mkdir(directory, 0o700) == 0 || errno == EEXIST else { throw SystemError("mkdir \(directory)") }
        guard mount(directory, directory, nil, UInt(MS_BIND), nil) == 0 else { throw SystemError("bind \(directory) on itself") }
        for change in propagation where mount(nil, directory, nil, change, nil) != 0 {
            throw SystemError("set the propagation of \(directory)")
        }
    }

    /// Binds the host directory `source` at `name` (a relative path below the share),
    /// now or while virtiofsd serves it. `recursive`: its submounts too (the spec's rbind).
    /// A read-only bind is read-only on the host, in every mount of an rbind, so the guest
    /// cannot write it whatever its kernel does.
    func bind(_ source: String, at name: String, readOnly: Bool, recursive: Bool) throws {
        let target = bindsPath + "/" + name
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let flags = UInt(MS_BIND) | (recursive ? UInt(MS_REC) : 0)
        guard readOnly else {
            guard mount(source, target, nil, flags, nil) == 0 else { throw SystemError("bind \(source) on \(target)") }
            // A bind of a shared mount joins its peer group: as a slave it still sees the
            // host's new mounts, and its own unmounts stay here.
            guard mount(nil, target, nil, UInt(MS_REC | MS_SLAVE), nil) == 0 else {
                umount2(target, Int32(MNT_DETACH))
                throw SystemError("make \(target) a slave mount")
            }
            return
        }
        let staged = stagingPath + "/" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: staged, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer {
            umount2(staged, Int32(MNT_DETACH))
            rmdir(staged)
        }
        guard mount(source, staged, nil, flags, nil) == 0 else { throw SystemError("bind \(source) on \(staged)") }
        // Private, not a slave: a mount the host makes under the source later would come in
        // with its own flags, writable.
        guard mount(nil, staged, nil, UInt(MS_REC | MS_PRIVATE), nil) == 0 else { throw SystemError("make \(staged) a private mount") }
        // Every mount of an rbind, not only the top one, keeping each one's nosuid, nodev,
        // noexec and atime flags (a bare remount would clear them).
        guard let points = MountTable.mountPoints(under: staged) else { throw RuntimeError("\(staged): the mount table cannot be read") }
        for point in points.reversed() {
            guard mount(nil, point, nil, UInt(MS_REMOUNT | MS_BIND | MS_RDONLY) | Self.keptFlags(point), nil) == 0 else {
                throw SystemError("remount \(point) read-only")
            }
        }
        // Bound from the read-only staging copy, every copy is read-only from the start.
        guard mount(staged, target, nil, flags, nil) == 0 else { throw SystemError("bind \(source) on \(target)") }
    }

    /// The per-mount flags of `point` that a read-only remount must keep.
    static func keptFlags(_ point: String) -> UInt {
        var info = statvfs()
        guard statvfs(point, &info) == 0 else { return 2 | 4 | 8 }  // unknown: nosuid, nodev, noexec
        let flags = UInt(info.f_flag)
        // statvfs's ST_* bits (sys/statvfs.h) and mount's MS_* (sys/mount.h): nosuid, nodev,
        // noexec, noatime, nodiratime, relatime.
        let pairs: [(UInt, UInt)] = [(2, 2), (4, 4), (8, 8), (1024, 1024), (2048, 2048), (4096, 1 << 21)]
        return pairs.reduce(0) { flags & $1.0 != 0 ? $0 | $1.1 : $0 }
    }

    /// Lazily detaches `point` and everything under it, without following a symlink
    /// there (a guest may rename directories inside its binds while this runs).
    static func detach(_ point: String) -> Bool {
        umount2(point, Int32(MNT_DETACH) | 8 /* UMOUNT_NOFOLLOW */) == 0 || errno == EINVAL || errno == ENOENT
    }

    /// Unbinds `name` (one container's rootfs or volume) from a share in use: the unmount
    /// reaches virtiofsd too. Its directories go once empty.
    func unbind(_ name: String) throws {
        let target = bindsPath + "/" + name
        guard Self.detach(target) else { throw SystemError("unmount \(target)") }
        guard MountTable.isUnmounted(target) else { throw RuntimeError("\(target): still mounted after unmounting") }
        try Self.removeEmptyDirectories(MountTable.canonical(target))
    }

    /// Unmounts everything at and below the share and its binds and staging directories,
    /// then removes their directories if they are empty. Throws, and leaves the files
    /// alone, when a mount remains or a directory holds anything.
    static func remove(at path: String) throws {
        for directory in [path, bindsPath(path), stagingPath(path)] {
            guard FileManager.default.fileExists(atPath: directory) else { continue }
            guard let mounted = MountTable.mountPoints(under: directory) else {
                throw RuntimeError("\(directory): the mount table cannot be read; left in place")
            }
            // The top one takes its whole subtree; only a tree whose top is not a mount (a
            // create that died half-way) is detached mount by mount.
            for point in mounted.contains(MountTable.canonical(directory)) ? [directory] : mounted where !detach(point) {
                throw SystemError("unmount \(point)")
            }
            guard MountTable.isUnmounted(directory) else {
                throw RuntimeError("\(directory): still mounted after unmounting: \((MountTable.mountPoints(under: directory) ?? []).joined(separator: ", "))")
            }
        }
        for directory in [path, bindsPath(path), stagingPath(path)] where FileManager.default.fileExists(atPath: directory) {
            try removeEmptyDirectories(MountTable.canonical(directory))
        }
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
