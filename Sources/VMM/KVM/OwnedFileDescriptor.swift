import Glibc

/// A file descriptor the VMM owns and closes exactly once, when the last reference goes.
public final class OwnedFileDescriptor: @unchecked Sendable {
    public let rawValue: Int32

    public init(_ rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// Opens `path`, throwing an error that names the path.
    public convenience init(opening path: String, flags: Int32, mode: mode_t = 0) throws {
        let fd = open(path, flags | O_CLOEXEC, mode)
        if fd < 0 { throw SystemError("open \(path)") }
        self.init(fd)
    }

    deinit {
        close(rawValue)
    }

    /// Writes all of `bytes`, retrying short writes and EINTR.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = retryingOnEINTR { Glibc.write(rawValue, bytes.baseAddress! + offset, bytes.count - offset) }
            if n < 0 { throw SystemError("write") }
            offset += n
        }
    }
}
