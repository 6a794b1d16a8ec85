import Foundation
import Glibc
import LinuxSupport

/// A container's directory for its sockets under the shared socket base. Its name is a
/// short hash (Unix socket paths are limited to 108 bytes), so two containers can collide,
/// a container that vanished without `delete` can have left one, and anybody who can
/// write the base could have planted one. So the directory is claimed: made 0700 by this
/// user, with an `owner` file naming the container's state directory. An existing one is
/// reused only if it is ours (a real directory, our uid, no group or other access) and
/// its owner is gone; it is removed only on behalf of its owner. Claims and removals take
/// the base's lock, so two runtimes never claim one name at once.
public struct SocketDirectory: Sendable {
    public let path: String
    /// The owning container's state directory (`<root>/<id>`): unique per container.
    public let owner: String

    static let ownerFile = "owner"

    public init(path: String, owner: String) {
        self.path = path
        self.owner = owner
    }

    var base: String { (path as NSString).deletingLastPathComponent }

    /// Makes the directory ours, or says why it cannot be.
    public func claim() throws {
        try makeDirectories(base, mode: 0o700)
        try Self.checkPrivate(base, what: "socket base directory", allowGroupAndOtherRead: true)
        try withBaseLock {
            if mkdir(path, 0o700) != 0 {
                guard errno == EEXIST else { throw SystemError("mkdir \(path)") }
                try Self.checkPrivate(path, what: "socket directory", allowGroupAndOtherRead: false)
                let current = recordedOwner()
                if let current, current != owner, FileManager.default.fileExists(atPath: current) {
                    throw RuntimeError("socket directory \(path) belongs to the container at \(current), which still exists "
                                       + "(its name's hash collides with this container's); delete that container first")
                }
                if current == nil, let entries = try? FileManager.default.contentsOfDirectory(atPath: path), !entries.isEmpty {
                    throw RuntimeError("socket directory \(path) exists with \(entries.count) entries but without an owner file: "
                                       + "not made by this runtime; remove it by hand if it is stale")
                }
                // Stale: left by a container that is gone (or by this id's previous life).
                do { try FileManager.default.removeItem(atPath: path) } catch {
                    throw RuntimeError("removing the stale socket directory \(path): \(error)")
                }
                guard mkdir(path, 0o700) == 0 else { throw SystemError("mkdir \(path)") }
            }
            try AtomicFile.write(Data(owner.utf8), to: path + "/" + Self.ownerFile)
            try AtomicFile.syncDirectory(containing: path)
        }
    }

    /// Removes the directory if it is this owner's (or an unclaimed empty one); another
    /// container's directory is left alone.
    public func release() {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        try? withBaseLock {
            let current = recordedOwner()
            let empty = (try? FileManager.default.contentsOfDirectory(atPath: path))?.isEmpty ?? false
            guard current == owner || (current == nil && empty) else { return }
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// The owner file's content (nil when absent or unreadable); never followed if a link.
    func recordedOwner() -> String? {
        let fd = open(path + "/" + Self.ownerFile, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard let bytes = try? FileDescriptors.readAll(fd, limit: 8192), !bytes.isEmpty else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A directory (not a link to one) owned by this user, writable by nobody else.
    static func checkPrivate(_ path: String, what: String, allowGroupAndOtherRead: Bool) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw SystemError("lstat \(what) \(path)") }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw RuntimeError("\(what) \(path) is not a directory (a link or a file is never followed): refusing to use it")
        }
        guard info.st_uid == geteuid() else {
            throw RuntimeError("\(what) \(path) is owned by uid \(info.st_uid), not this user (\(geteuid())): refusing to use it")
        }
        let forbidden: mode_t = allowGroupAndOtherRead ? 0o022 : 0o077
        guard info.st_mode & forbidden == 0 else {
            throw RuntimeError("\(what) \(path) has mode \(String(info.st_mode & 0o7777, radix: 8)), open to other users: refusing to use it")
        }
    }

    func withBaseLock<T>(_ body: () throws -> T) throws -> T {
        let fd = open(base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open \(base)") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw SystemError("flock \(base)") }
        }
        return try body()
    }
}
