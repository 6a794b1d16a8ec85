#if canImport(Glibc)
import Glibc
#endif
import AgentProtocol
import HybridVsock
import LinuxSupport

/// How the runtime reaches a guest agent: a Unix socket it serves directly (host tests),
/// or a hybrid vsock socket of the VMM (Firecracker's: connect to the UDS, send
/// "CONNECT <port>\n", read "OK <hostport>\n", then the stream is the guest's).
public enum AgentEndpoint: Sendable, Equatable {
    case unix(path: String)
    case hybridVsock(udsPath: String, port: UInt32)

    /// Opens a connected stream socket to the agent.
    func connect() throws(AgentClientError) -> Int32 {
        switch self {
        case .unix(let path):
            return try AgentEndpoint.connectUnix(path)
        case .hybridVsock(let udsPath, let port):
            let fd = try AgentEndpoint.connectUnix(udsPath)
            do {
                try AgentEndpoint.handshake(fd: fd, port: port)
            } catch {
                close(fd)
                throw error
            }
            return fd
        }
    }

    static func connectUnix(_ path: String) throws(AgentClientError) -> Int32 {
        guard let address = UnixSocketAddress(path) else {
            throw .connectionClosed("socket path too long: \(path)")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(errno: errno, operation: "socket(AF_UNIX)") }
        if address.connect(fd) != 0 {
            let error = errno
            close(fd)
            throw .connectionClosed("connect(\(path)): \(String(cString: strerror(error)))")
        }
        return fd
    }

    /// Firecracker's hybrid vsock handshake (the lines are `HybridVsockLine`'s); reads the
    /// reply one byte at a time so that no byte of the agent's stream is consumed.
    static func handshake(fd: Int32, port: UInt32) throws(AgentClientError) {
        let request = HybridVsockLine.connect(port: port)
        let sent = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == request.count else { throw .system(errno: errno, operation: "send(CONNECT)") }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < HybridVsockLine.maxLength {
            let n = read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            guard n == 1 else { throw .connectionClosed("hybrid vsock: no reply to CONNECT \(port)") }
            line.append(byte)
            if byte == UInt8(ascii: "\n") {
                guard case .line = HybridVsockLine.parseOK(line) else {
                    throw .connectionClosed("hybrid vsock: \(String(decoding: line.dropLast(), as: UTF8.self))")
                }
                return
            }
        }
        throw .protocolViolation("hybrid vsock: reply line longer than \(HybridVsockLine.maxLength) bytes")
    }
}
