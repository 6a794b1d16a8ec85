import Glibc

/// Reads a file a caller named (config file, OCI spec, kernel, initrd, TOML configuration)
/// whole, after checking what it is: a FIFO would block the reader forever and a device
/// such as /dev/zero would grow the buffer without bound, so only a regular file of at most
/// `limit` bytes is read. Disk images are not read here: a block device is a valid backend.
public enum CheckedFile {
    /// Largest kernel or initrd.
    public static let bootImageLimit = 2 << 30
    /// Largest JSON or TOML document (config file, process.json, resources): real ones are KiB.
    public static let documentLimit = 1 << 20

    /// Reads the file whole: at most `limit` bytes, and only from a regular file.
    public static func read(_ path: String, role: String, limit: Int, allowEmpty: Bool = true) throws -> [UInt8] {
        let (fd, size) = try open(path, role: role, limit: limit, allowEmpty: allowEmpty)
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: size)
        var offset = 0
        try bytes.withUnsafeMutableBytes { buffer in
            // At most the size fstat saw: a file that grows while we read cannot outgrow the check.
            while offset < size {
                let n = pread(fd, buffer.baseAddress! + offset, size - offset, off_t(offset))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw HostInputError.readFailed(role: role, path: path, errno: errno)
                }
                if n == 0 { break }
                offset += n
            }
        }
        if offset < size { bytes.removeLast(size - offset) }
        guard !bytes.isEmpty || allowEmpty else { throw HostInputError.empty(role: role, path: path) }
        return bytes
    }

    /// The checks `read` makes, without reading (a path judged when it is configured and
    /// read later); returns the file's size.
    @discardableResult
    public static func check(_ path: String, role: String, limit: Int, allowEmpty: Bool = true) throws -> Int {
        let (fd, size) = try open(path, role: role, limit: limit, allowEmpty: allowEmpty)
        close(fd)
        return size
    }

    /// Opens a regular file of at most `limit` bytes; the caller closes the descriptor.
    static func open(_ path: String, role: String, limit: Int, allowEmpty: Bool) throws -> (Int32, Int) {
        try path.checkNoNul(field: role)
        // Judged before opening: opening a device can have effects of its own (a tape rewinds).
        var info = stat()
        if stat(path, &info) == 0, let kind = nonRegularKind(info.st_mode) {
            throw HostInputError.notARegularFile(role: role, path: path, kind: kind)
        }
        // O_NONBLOCK: should a FIFO replace the file after the stat, open must not wait for a writer.
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        if fd < 0 { throw HostInputError.cannotOpen(role: role, path: path, errno: errno) }
        do {
            guard fstat(fd, &info) == 0 else { throw HostInputError.readFailed(role: role, path: path, errno: errno) }
            if let kind = nonRegularKind(info.st_mode) {
                throw HostInputError.notARegularFile(role: role, path: path, kind: kind)
            }
            let size = Int(info.st_size)
            guard size <= limit else { throw HostInputError.tooLarge(role: role, path: path, size: size, limit: limit) }
            guard size > 0 || allowEmpty else { throw HostInputError.empty(role: role, path: path) }
            return (fd, size)
        } catch {
            close(fd)
            throw error
        }
    }

    /// What a non-regular file is, in words; nil for a regular file.
    static func nonRegularKind(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "a special file"
        }
    }
}
