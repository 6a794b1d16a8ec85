#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Files replaced whole (state, config copy, pid files, cached rootfs images): a crash at
/// any moment leaves the old file or the new one, never a torn one. The data goes to a
/// fresh temporary beside the target, created `O_EXCL|O_NOFOLLOW` under a random name
/// (nothing can be planted there in advance, nothing is followed), flock'd while it is
/// written (so a sweeper can tell a live writer from a dead one), fsync'd, renamed over the
/// target; then the directory is fsync'd so that the rename itself is durable.
public enum AtomicFile {
    /// Temporaries are `.<target name>.tmp-<16 hex digits>`.
    static let temporaryInfix = ".tmp-"

    public static func write(_ bytes: some Collection<UInt8>, to path: String, mode: mode_t = 0o600) throws {
        try replace(path, mode: mode) { fd, _ in try FileDescriptors.writeAll(fd, Array(bytes)) }
    }

    /// `fill` writes the new content into the temporary (its fd and path).
    public static func replace(_ path: String, mode: mode_t = 0o600, fill: (Int32, String) throws -> Void) throws {
        let (fd, temporary) = try createTemporary(for: path, mode: mode)
        do {
            try fill(fd, temporary)
            guard fsync(fd) == 0 else { throw SystemError("fsync \(temporary)") }
            guard rename(temporary, path) == 0 else { throw SystemError("rename \(temporary) to \(path)") }
        } catch {
            unlink(temporary)
            close(fd)
            throw error
        }
        close(fd)
        try syncDirectory(containing: path)
    }

    public static func createTemporary(for path: String, mode: mode_t) throws(SystemError) -> (fd: Int32, path: String) {
        let (directory, name) = split(path)
        // A collision (2^-64) is retried, never opened: O_EXCL.
        for _ in 0..<8 {
            let random = String(UInt64.random(in: .min ... .max), radix: 16)
            let temporary = (directory.isEmpty ? "" : directory + "/") + "." + name + temporaryInfix
                + String(repeating: "0", count: 16 - random.count) + random
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            if fd < 0 {
                if errno == EEXIST { continue }
                throw SystemError("create \(temporary)")
            }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                let error = SystemError("flock \(temporary)")
                unlink(temporary)
                close(fd)
                throw error
            }
            return (fd, temporary)
        }
        throw SystemError("\(path): no unused temporary name after 8 tries", errno: EEXIST)
    }

    /// Makes a rename (or an unlink, a mkdir) in the directory of `path` durable.
    public static func syncDirectory(containing path: String) throws(SystemError) {
        let directory = split(path).directory
        let target = directory.isEmpty ? "." : directory
        let fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open directory \(target)") }
        defer { close(fd) }
        // Some filesystems cannot sync a directory (EINVAL): nothing more to do there.
        guard fsync(fd) == 0 || errno == EINVAL else { throw SystemError("fsync directory \(target)") }
    }

    /// Whether `name` is one of this type's temporaries.
    public static func isTemporary(_ name: String) -> Bool {
        guard name.hasPrefix("."), let suffix = name.split(separator: ".", omittingEmptySubsequences: false).last,
              suffix.hasPrefix("tmp-") else { return false }
        let digits = suffix.dropFirst(4)
        return digits.count == 16 && digits.allSatisfy(\.isHexDigit)
    }

    /// A temporary left by a writer that died (killed before its rename): no writer holds
    /// its lock, and it has not been touched for `age` seconds (a writer that has just
    /// created it but not locked it yet is never taken for dead).
    public static func isAbandoned(_ path: String, age: Double = 10) -> Bool {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        guard Double(now.tv_sec - info.st_mtim.tv_sec) >= age else { return false }
        return flock(fd, LOCK_EX | LOCK_NB) == 0
    }

    /// Removes the abandoned temporaries in `directory`; returns their names.
    @discardableResult
    public static func removeAbandonedTemporaries(in directory: String, age: Double = 10,
                                                  matching isCandidate: (String) -> Bool = isTemporary) -> [String] {
        var removed: [String] = []
        for name in entries(of: directory) where isCandidate(name) && isAbandoned(directory + "/" + name, age: age) {
            if unlink(directory + "/" + name) == 0 { removed.append(name) }
        }
        if !removed.isEmpty { try? syncDirectory(containing: directory + "/" + removed[0]) }
        return removed
    }

    /// The directory part (without the trailing slash; "" for a bare name) and the name.
    static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }

    /// The names in `directory` (not . and ..); none if it cannot be read.
    static func entries(of directory: String) -> [String] {
        guard let stream = opendir(directory) else { return [] }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
