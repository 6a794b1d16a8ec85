import Glibc

/// A runtime-level failure with a message meant for the caller (runc prints these on
/// stderr and in the log; containerd and podman show them to the user).
public struct RuntimeError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }

    public static func notExist(_ id: String) -> RuntimeError { RuntimeError("container \(id) does not exist") }
}
