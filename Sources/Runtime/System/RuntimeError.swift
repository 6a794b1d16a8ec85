import Glibc

/// A failed system call, with errno and what was being done: every error the runtime
/// prints names the operation and the object.
public struct SystemCallError: Error, CustomStringConvertible, Equatable {
    public let operation: String
    public let errno: Int32

    public init(_ operation: String, errno: Int32 = Glibc.errno) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}

/// A runtime-level failure with a message meant for the caller (runc prints these on
/// stderr and in the log; containerd and podman show them to the user).
public struct RuntimeError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }

    public static func notExist(_ id: String) -> RuntimeError { RuntimeError("container \(id) does not exist") }
}
