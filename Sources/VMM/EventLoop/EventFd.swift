import CLinux
import Glibc
import LinuxSupport

/// A Linux eventfd: the doorbell between KVM (irqfd/ioeventfd), vCPU threads and the
/// event loop.
public final class EventFd: Sendable {
    public let fd: OwnedFileDescriptor

    public init(nonBlocking: Bool = true) throws {
        let raw = eventfd(0, Int32(EFD_CLOEXEC) | (nonBlocking ? Int32(EFD_NONBLOCK) : 0))
        if raw < 0 { throw SystemError("eventfd") }
        fd = OwnedFileDescriptor(raw)
    }

    /// Adds `value` to the counter (wakes the reader / injects the interrupt).
    @inline(__always)
    public func signal(_ value: UInt64 = 1) {
        var value = value
        _ = retryingOnEINTR { Glibc.write(fd.rawValue, &value, 8) }
    }

    /// Reads and resets the counter; nil when it was zero (non-blocking).
    @discardableResult
    public func consume() -> UInt64? {
        var value: UInt64 = 0
        let n = retryingOnEINTR { Glibc.read(fd.rawValue, &value, 8) }
        return n == 8 ? value : nil
    }
}
