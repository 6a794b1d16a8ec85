#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLinux
import LinuxSupport

/// Where the agent listens: AF_VSOCK (in the guest: any CID, a port) or a Unix socket
/// path (host tests). Parsed from `--listen vsock:PORT` / `--listen unix:PATH`.
enum ListenAddress: Equatable, CustomStringConvertible {
    case vsock(port: UInt32)
    case unix(path: String)

    static let defaultVsockPort: UInt32 = 1024

    init(parsing text: String) throws(AgentError) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw .invalid("--listen unix: needs a path") }
            self = .unix(path: path)
        } else if text.hasPrefix("vsock:") {
            guard let port = UInt32(text.dropFirst(6)) else { throw .invalid("--listen vsock:PORT needs a port number") }
            self = .vsock(port: port)
        } else {
            throw .invalid("--listen expects unix:PATH or vsock:PORT, not \(text)")
        }
    }

    var description: String {
        switch self {
        case .vsock(let port): return "vsock:\(port)"
        case .unix(let path): return "unix:\(path)"
        }
    }

    /// A bound, listening socket (close-on-exec).
    func listen() throws(AgentError) -> Int32 {
        switch self {
        case .unix(let path):
            guard let address = UnixSocketAddress(path) else {
                throw .invalid("socket path too long (over \(UnixSocketAddress.maxPathLength) bytes) or empty: \(path)")
            }
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw .errno("socket(AF_UNIX)") }
            unlink(path)
            return try Self.listen(fd, bound: address.bind(fd), what: path)
        case .vsock(let port):
            let fd = socket(AF_VSOCK, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw .errno("socket(AF_VSOCK)") }
            return try Self.listen(fd, bound: VsockSocketAddress(port: port).bind(fd), what: "vsock port \(port)")
        }
    }

    /// Listens on `fd` once `bound` (bind's result) succeeded; closes it on any failure.
    private static func listen(_ fd: Int32, bound: Int32, what: String) throws(AgentError) -> Int32 {
        guard bound == 0 else { let e = AgentError.errno("bind(\(what))"); close(fd); throw e }
        guard Glibc.listen(fd, 64) == 0 else { let e = AgentError.errno("listen(\(what))"); close(fd); throw e }
        return fd
    }
}
