#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// A file descriptor that is owned and closed exactly once, when the last reference goes:
/// the one owner type for descriptors a component holds for its lifetime (KVM's, a disk's,
/// a socket's). Calls that need the number get `rawValue`; Swift code gets `descriptor`.
public final class OwnedFileDescriptor: @unchecked Sendable {  // immutable; close happens once, in deinit
    public let descriptor: FileDescriptor
    public var rawValue: Int32 { descriptor.rawValue }

    public init(_ rawValue: Int32) {
        descriptor = FileDescriptor(rawValue: rawValue)
    }

    /// Opens `path` close-on-exec, throwing an error that names the path.
    public convenience init(opening path: String, flags: Int32, mode: mode_t = 0) throws(SystemError) {
        let fd = open(path, flags | O_CLOEXEC, mode)
        if fd < 0 { throw SystemError("open \(path)") }
        self.init(fd)
    }

    deinit {
        try? descriptor.close()
    }

    /// Writes all of `bytes`, retrying short writes and EINTR.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        do {
            _ = try descriptor.writeAll(bytes)
        } catch let error as Errno {
            throw SystemError("write", error)
        } catch {
            throw SystemError("write", errno: EIO)
        }
    }
}
