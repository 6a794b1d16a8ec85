#if canImport(Glibc)
import Glibc
#endif
import AgentProtocol
import HybridVsock
import LinuxSupport

/// How the runtime reaches a guest agent: a Unix socket it serves directly (host tests),
/// or a hybrid vsock socket of the VMM (Firecracker's: connect to the UDS, send
/// "CONNECT <port>\n", read "OK <hostport>\n", then the stream is the guest's).
/// How long opening an agent connection keeps trying, as Kata's runtime does
/// (`reconnect_timeout_ms`, a pause of `dial_timeout_ms` between attempts). The VMM closes
/// a hybrid vsock client whose REQUEST the guest did not answer within its connect
/// timeout (a guest starved of CPU) or answered with an RST (its listen backlog full);
/// the next attempt normally gets through, and one that never does still fails, with
/// the last attempt's reason.
public struct AgentDialPolicy: Sendable, Equatable {
    public var window: Duration
    public var pause: Duration

    public init(window: Duration, pause: Duration) {
        self.window = window
        self.pause = pause
    }

    /// One attempt, no retry: callers that poll on their own (waiting for a booting agent).
    public static let once = AgentDialPolicy(window: .zero, pause: .zero)
    public static let standard = AgentDialPolicy(window: .seconds(10), pause: .milliseconds(50))
}

public enum AgentEndpoint: Sendable, Equatable {
    case unix(path: String)
    case hybridVsock(udsPath: String, port: UInt32)

    /// Opens a connected stream socket to the agent; returns it and how many attempts it
    /// took. A hybrid vsock handshake that the VMM accepted but closed or refused (the
    /// guest's side) is tried again within `policy`'s window; a socket that cannot be
    /// reached at all (no VMM) fails at once.
    func connect(_ policy: AgentDialPolicy) throws(AgentClientError) -> (fd: Int32, attempts: Int) {
        switch self {
        case .unix(let path):
            return (try AgentEndpoint.connectUnix(path), 1)
        case .hybridVsock(let udsPath, let port):
            return try AgentEndpoint.dialHybridVsock(udsPath, port: port, policy)
        }
    }

    static func dialHybridVsock(_ udsPath: String, port: UInt32, _ policy: AgentDialPolicy) throws(AgentClientError) -> (fd: Int32, attempts: Int) {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: policy.window)
        var attempts = 0
        while true {
            attempts += 1
            let fd = try AgentEndpoint.connectUnix(udsPath)
            let failure: AgentClientError
            do {
                try AgentEndpoint.handshake(fd: fd, port: port)
                return (fd, attempts)
            } catch {
                close(fd)
                failure = error
            }
            guard case .connectionClosed(let why) = failure else { throw failure }
            guard clock.now.advanced(by: policy.pause) < deadline else {
                throw attempts == 1 ? failure : .connectionClosed("\(why) (after \(attempts) attempts in \(policy.window))")
            }
            usleep(UInt32(policy.pause / .microseconds(1)))
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
