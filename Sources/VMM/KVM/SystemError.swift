import Glibc

/// A failed system call or KVM ioctl. Carries the operation's name and errno so that a
/// user reading one line can tell what the VMM was doing and why the kernel refused it.
public struct SystemError: Error, CustomStringConvertible, Equatable {
    public let operation: String
    public let errno: Int32

    public init(_ operation: String, errno: Int32 = Glibc.errno) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        "\(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Runs `body` and throws a `SystemError` for the conventional `-1` + errno failure.
@inline(__always)
@discardableResult
public func check(_ operation: @autoclosure () -> String, _ result: Int32) throws -> Int32 {
    if result < 0 { throw SystemError(operation(), errno: errno) }
    return result
}

/// Retries a system call interrupted by a signal.
@inline(__always)
public func retryingOnEINTR(_ body: () -> Int) -> Int {
    while true {
        let result = body()
        if result >= 0 || errno != EINTR { return result }
    }
}
