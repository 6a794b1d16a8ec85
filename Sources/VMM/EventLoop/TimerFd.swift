import CLinux
import Glibc
import LinuxSupport

/// A CLOCK_MONOTONIC timerfd for the event loop: one-shot (a rate limiter's refill) or
/// periodic (vsock's connection deadlines). Its owner serialises the calls (its lock or
/// the event loop thread); `close` may come early, at shutdown, and happens once.
public final class TimerFd: @unchecked Sendable {  // `armed` and `isOpen` change only under the owner's serialisation
    public let fd: Int32
    public private(set) var armed = false
    private var isOpen = true

    public init() throws {
        fd = clinux_timerfd_create(CLOCK_MONOTONIC, O_NONBLOCK | O_CLOEXEC)  // TFD_NONBLOCK, TFD_CLOEXEC
        guard fd >= 0 else { throw SystemError("timerfd_create") }
    }

    deinit { close() }

    public func close() {
        guard isOpen else { return }
        isOpen = false
        Glibc.close(fd)
    }

    /// Fires once after `ns` (at least 1 ns: zero would disarm), then every `periodNs` if
    /// that is not zero. Re-arming replaces the previous setting.
    public func arm(afterNs ns: UInt64, periodNs: UInt64 = 0) {
        set(value: max(ns, 1), interval: periodNs)
        armed = true
    }

    /// Periodic, first expiry one period from now; a timer already armed is left alone.
    public func armPeriodic(periodNs: UInt64) {
        guard !armed else { return }
        arm(afterNs: periodNs, periodNs: periodNs)
    }

    public func disarm() {
        guard armed else { return }
        set(value: 0, interval: 0)
        armed = false
    }

    /// Reads the expiration count, so that the fd stops being readable.
    public func consume() {
        var expirations: UInt64 = 0
        _ = Glibc.read(fd, &expirations, 8)
    }

    private func set(value: UInt64, interval: UInt64) {
        var spec = itimerspec(it_interval: Self.timespec(interval), it_value: Self.timespec(value))
        _ = clinux_timerfd_settime(fd, 0, &spec, nil)
    }

    private static func timespec(_ ns: UInt64) -> Glibc.timespec {
        Glibc.timespec(tv_sec: Int(clamping: ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    }
}
