/// A refused request or a bad config file: the message Firecracker's clients read from
/// `{"fault_message": "..."}` (HTTP 400 unless `status` says otherwise), or the line
/// `kata-vmm` prints for a config file. It always names the field and the problem.
public struct ApiError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String
    public var status: Int

    public init(_ message: String, status: Int = 400) {
        self.message = message
        self.status = status
    }

    public var description: String { message }

    static let notAllowedAfterStart = ApiError("The requested operation is not supported after starting the microVM.")
    static let notAllowedBeforeStart = ApiError("The requested operation is not supported before starting the microVM.")
}
