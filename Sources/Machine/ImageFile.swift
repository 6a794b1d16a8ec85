import Glibc
import VMM

/// Reads a boot input (kernel, initrd) whole, with errors that name the file and its role.
public enum ImageFile {
    public enum ReadError: Error, CustomStringConvertible, Equatable {
        case cannotOpen(role: String, path: String, errno: Int32)
        case notARegularFile(role: String, path: String)
        case empty(role: String, path: String)
        case tooLarge(role: String, path: String, size: Int)
        case readFailed(role: String, path: String, errno: Int32)

        public var description: String {
            switch self {
            case .cannotOpen(let role, let path, let err):
                return "cannot open \(role) '\(path)': \(String(cString: strerror(err)))"
            case .notARegularFile(let role, let path):
                return "\(role) '\(path)' is not a regular file"
            case .empty(let role, let path):
                return "\(role) '\(path)' is empty"
            case .tooLarge(let role, let path, let size):
                return "\(role) '\(path)' is too large (\(size >> 20) MiB)"
            case .readFailed(let role, let path, let err):
                return "cannot read \(role) '\(path)': \(String(cString: strerror(err)))"
            }
        }
    }

    public static let maxSize = 2 << 30

    public static func read(_ path: String, role: String) throws -> [UInt8] {
        // O_NONBLOCK: a FIFO without a writer must be refused, not waited on.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 { throw ReadError.cannotOpen(role: role, path: path, errno: errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ReadError.readFailed(role: role, path: path, errno: errno) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw ReadError.notARegularFile(role: role, path: path) }
        let size = Int(info.st_size)
        guard size > 0 else { throw ReadError.empty(role: role, path: path) }
        guard size <= maxSize else { throw ReadError.tooLarge(role: role, path: path, size: size) }
        var bytes = [UInt8](repeating: 0, count: size)
        var offset = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while offset < size {
                let n = pread(fd, buffer.baseAddress! + offset, size - offset, off_t(offset))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ReadError.readFailed(role: role, path: path, errno: errno)
                }
                if n == 0 { break }
                offset += n
            }
        }
        return Array(bytes[0..<offset])
    }
}
