/// A device whose backend could not be set up, named as the user configured it, so that
/// "vhost-user: connect ..." says which of several devices failed.
public struct DeviceSetupError: Error, CustomStringConvertible {
    public let device: String
    public let cause: any Error

    public init(device: String, cause: any Error) {
        self.device = device
        self.cause = cause
    }

    public var description: String { "\(device): \(cause)" }
}
