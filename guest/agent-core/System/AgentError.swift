#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import AgentProtocol
import LinuxSupport

/// A failure inside the agent, with errno and what it was doing. Handlers map it to a
/// ttrpc status through `rpcError`.
enum AgentError: Error, CustomStringConvertible {
    case system(errno: Int32, String)
    case invalid(String)
    case notFound(String)
    case exists(String)
    case precondition(String)

    /// A LinuxSupport call that failed, as the agent reports it.
    init(_ error: SystemError) {
        self = .system(errno: error.errno, error.operation)
    }

    /// `operation` failed with the current errno.
    static func errno(_ operation: String) -> AgentError {
        .system(errno: Glibc.errno, operation)
    }

    var description: String {
        switch self {
        case .system(let code, let operation):
            return "\(operation): \(String(cString: strerror(code))) (errno \(code))"
        case .invalid(let what), .notFound(let what), .exists(let what), .precondition(let what):
            return what
        }
    }

    var rpcError: RPCError {
        switch self {
        case .system: return RPCError(.internalError, description)
        case .invalid: return RPCError(.invalidArgument, description)
        case .notFound: return RPCError(.notFound, description)
        case .exists: return RPCError(.alreadyExists, description)
        case .precondition: return RPCError(.failedPrecondition, description)
        }
    }
}
