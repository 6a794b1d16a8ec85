/// The gRPC status codes ttrpc carries in `Ttrpc_Status.code`.
public enum RPCCode: Int32, Sendable, CustomStringConvertible {
    case ok = 0
    case cancelled = 1
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case permissionDenied = 7
    case resourceExhausted = 8
    case failedPrecondition = 9
    case aborted = 10
    case outOfRange = 11
    case unimplemented = 12
    case internalError = 13
    case unavailable = 14
    case dataLoss = 15
    case unauthenticated = 16

    public var description: String {
        switch self {
        case .ok: return "OK"
        case .cancelled: return "CANCELLED"
        case .unknown: return "UNKNOWN"
        case .invalidArgument: return "INVALID_ARGUMENT"
        case .deadlineExceeded: return "DEADLINE_EXCEEDED"
        case .notFound: return "NOT_FOUND"
        case .alreadyExists: return "ALREADY_EXISTS"
        case .permissionDenied: return "PERMISSION_DENIED"
        case .resourceExhausted: return "RESOURCE_EXHAUSTED"
        case .failedPrecondition: return "FAILED_PRECONDITION"
        case .aborted: return "ABORTED"
        case .outOfRange: return "OUT_OF_RANGE"
        case .unimplemented: return "UNIMPLEMENTED"
        case .internalError: return "INTERNAL"
        case .unavailable: return "UNAVAILABLE"
        case .dataLoss: return "DATA_LOSS"
        case .unauthenticated: return "UNAUTHENTICATED"
        }
    }
}

/// An RPC that failed with a ttrpc status: thrown by agent handlers, carried to the
/// client in `Ttrpc_Response.status`, and rethrown there.
public struct RPCError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: Int32
    public let message: String

    public init(_ code: RPCCode, _ message: String) {
        self.code = code.rawValue
        self.message = message
    }

    public init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }

    public var rpcCode: RPCCode? { RPCCode(rawValue: code) }

    public var description: String {
        "\(rpcCode.map { $0.description } ?? "code \(code)"): \(message)"
    }
}

/// Service names on the wire (Kata's).
public enum AgentServiceName {
    public static let agent = "grpc.AgentService"
    public static let health = "grpc.Health"
}

/// The version the agent reports and the client expects.
public enum AgentProtocolVersion {
    public static let agentVersion = "0.1.0"
    /// The ttrpc protocol revision the framing follows.
    public static let protocolVersion = "ttrpc/1"
}
