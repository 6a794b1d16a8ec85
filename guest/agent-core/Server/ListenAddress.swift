#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw .errno("socket(AF_UNIX)") }
            unlink(path)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
                close(fd)
                throw .invalid("socket path too long: \(path)")
            }
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard bound == 0 else { let e = AgentError.errno("bind(\(path))"); close(fd); throw e }
            guard Glibc.listen(fd, 64) == 0 else { let e = AgentError.errno("listen"); close(fd); throw e }
            return fd
        case .vsock(let port):
            let afVsock: Int32 = 40
            let fd = socket(afVsock, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw .errno("socket(AF_VSOCK)") }
            // struct sockaddr_vm: family (u16), reserved (u16), port (u32), cid (u32), zero[4].
            var address = [UInt8](repeating: 0, count: 16)
            address[0] = UInt8(afVsock)
            withUnsafeBytes(of: port.littleEndian) { address.replaceSubrange(4..<8, with: $0) }
            withUnsafeBytes(of: UInt32.max.littleEndian) { address.replaceSubrange(8..<12, with: $0) }  // VMADDR_CID_ANY
            let bound = address.withUnsafeBytes {
                bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), 16)
            }
            guard bound == 0 else { let e = AgentError.errno("bind(vsock port \(port))"); close(fd); throw e }
            guard Glibc.listen(fd, 64) == 0 else { let e = AgentError.errno("listen(vsock)"); close(fd); throw e }
            return fd
        }
    }
}
