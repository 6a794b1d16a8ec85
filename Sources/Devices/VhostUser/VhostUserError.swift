import LinuxSupport

/// Why talking to a vhost-user backend failed. Every case ends the connection: the
/// device that owned it stops using the backend (it does not take the VMM with it).
public enum VhostUserError: Error, CustomStringConvertible, Equatable {
    case system(SystemError)
    /// The backend closed the socket (it exited or was killed).
    case closed(during: String)
    case timedOut(VhostUserRequest)
    case malformedReply(String)
    /// REPLY_ACK with a non-zero status.
    case refused(VhostUserRequest, status: UInt64)
    /// The backend lacks something the device cannot do without.
    case unsupported(String)

    public var description: String {
        switch self {
        case .system(let error): "vhost-user: \(error)"
        case .closed(let during): "vhost-user: the backend closed the connection (\(during))"
        case .timedOut(let request): "vhost-user: no reply to \(request) in time"
        case .malformedReply(let what): "vhost-user: malformed reply: \(what)"
        case .refused(let request, let status): "vhost-user: the backend refused \(request) (status \(status))"
        case .unsupported(let what): "vhost-user: the backend does not support \(what)"
        }
    }
}
