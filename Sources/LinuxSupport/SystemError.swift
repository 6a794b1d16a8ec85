#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// A failed system call, ioctl or libc call: the one error type for the host's and the
/// guest's plumbing. It carries what was being done (the operation and its object, "open
/// /dev/kvm") and errno, so that one line tells what failed and why the kernel refused it.
public struct SystemError: Error, CustomStringConvertible, Equatable, Sendable {
    public let operation: String
    public let errno: Int32

    public init(_ operation: String, errno: Int32 = currentErrno()) {
        self.operation = operation
        self.errno = errno
    }

    public init(_ operation: String, _ errno: Errno) {
        self.init(operation, errno: errno.rawValue)
    }

    /// swift-system's value for the errno, for matching (`error.code == .noSuchFileOrDirectory`).
    public var code: Errno { Errno(rawValue: errno) }

    public var description: String { "\(operation): \(code.description) (errno \(errno))" }
}

/// The calling thread's errno (a default argument cannot name the global `errno`, which
/// `SystemError.errno` shadows).
@inline(__always)
public func currentErrno() -> Int32 { errno }

/// Throws a `SystemError` for the conventional `-1` + errno failure, else returns the result.
@inline(__always)
@discardableResult
public func check(_ operation: @autoclosure () -> String, _ result: Int32) throws(SystemError) -> Int32 {
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
