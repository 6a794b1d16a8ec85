import AgentProtocol

/// Why an `AgentClient` call failed.
public enum AgentClientError: Error, Sendable, CustomStringConvertible {
    /// The agent answered with a non-OK ttrpc status (code and message as sent).
    case rpc(RPCError)
    /// The connection ended (or could not be made); pending and later calls fail with it.
    case connectionClosed(String)
    /// The agent sent something that is not a valid ttrpc response.
    case protocolViolation(String)
    /// A system call failed while connecting or sending.
    case system(errno: Int32, operation: String)
    /// No response within the call's timeout.
    case timedOut(method: String)

    public var description: String {
        switch self {
        case .rpc(let error): return "agent: \(error)"
        case .connectionClosed(let why): return "agent connection closed: \(why)"
        case .protocolViolation(let why): return "agent protocol violation: \(why)"
        case .system(let errno, let operation): return "\(operation): errno \(errno)"
        case .timedOut(let method): return "agent call \(method) timed out"
        }
    }

    /// The ttrpc status code when the agent answered with an error.
    public var rpcCode: RPCCode? {
        if case .rpc(let error) = self { return error.rpcCode }
        return nil
    }
}
