import Glibc
import Logging
import Synchronization

/// Bounds a log line that a guest can trigger at will (a bad descriptor chain, a stray
/// write to a device), so that a hostile guest cannot flood the host's log or fill its
/// disk: at most `burst` lines per `interval`, then silence; the first line of a later
/// interval says how many were suppressed. As the kernel's printk_ratelimit, the count
/// is reported when the next line is let through, not on a timer.
///
/// One limiter per call site. `admit` takes an uncontended lock and reads the monotonic
/// clock; it allocates nothing, so it is cheap on a vCPU's exit path.
public final class LogRateLimiter: Sendable {
    /// Nanoseconds on a monotonic clock (injectable for tests).
    public typealias Clock = @Sendable () -> UInt64

    public static let defaultBurst = 10
    public static let defaultInterval: UInt64 = 5_000_000_000

    private struct Window {
        var start: UInt64
        var count = 0
        var suppressed = 0
    }

    public let burst: Int
    public let interval: UInt64
    private let clock: Clock
    private let window: Mutex<Window?> = Mutex(nil)

    public init(burst: Int = LogRateLimiter.defaultBurst, interval: UInt64 = LogRateLimiter.defaultInterval,
                clock: @escaping Clock = LogRateLimiter.monotonicNanos) {
        self.burst = max(1, burst)
        self.interval = interval
        self.clock = clock
    }

    /// nil: drop this line. Otherwise log it, after saying that `suppressed` lines (if
    /// any) were dropped since the last one logged.
    public func admit() -> Int? {
        let now = clock()
        return window.withLock { window -> Int? in
            guard var current = window, now &- current.start < interval else {
                let suppressed = window?.suppressed ?? 0
                window = Window(start: now, count: 1)
                return suppressed
            }
            defer { window = current }
            guard current.count < burst else {
                current.suppressed += 1
                return nil
            }
            current.count += 1
            return 0
        }
    }

    @Sendable public static func monotonicNanos() -> UInt64 { ProcessClock.monotonicNanos() }
}

/// A `Logger` behind a `LogRateLimiter`: for one guest-triggerable message. The message is
/// an autoclosure, built only when the line is let through.
public struct RateLimitedLogger: Sendable {
    public let logger: Logger
    public let limiter: LogRateLimiter

    public init(_ logger: Logger, burst: Int = LogRateLimiter.defaultBurst,
                interval: UInt64 = LogRateLimiter.defaultInterval,
                clock: @escaping LogRateLimiter.Clock = LogRateLimiter.monotonicNanos) {
        self.logger = logger
        self.limiter = LogRateLimiter(burst: burst, interval: interval, clock: clock)
    }

    public func log(level: Logger.Level, _ message: @autoclosure () -> Logger.Message,
                    file: String = #fileID, function: String = #function, line: UInt = #line) {
        guard admitted(level: level, file: file, function: function, line: line) else { return }
        logger.log(level: level, message(), file: file, function: function, line: line)
    }

    /// Whether a line at `level` may be logged now (for a call site that logs several
    /// lines at once); first logs how many were suppressed before it, if any.
    public func admitted(level: Logger.Level, file: String = #fileID, function: String = #function, line: UInt = #line) -> Bool {
        guard logger.logLevel <= level, let suppressed = limiter.admit() else { return false }
        if suppressed > 0 {
            logger.log(level: level, "\(suppressed) similar messages suppressed (rate limit: \(limiter.burst) per \(limiter.interval / 1_000_000_000) s)",
                       file: file, function: function, line: line)
        }
        return true
    }

    public func info(_ message: @autoclosure () -> Logger.Message, file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .info, message(), file: file, function: function, line: line)
    }

    public func warning(_ message: @autoclosure () -> Logger.Message, file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .warning, message(), file: file, function: function, line: line)
    }

    public func error(_ message: @autoclosure () -> Logger.Message, file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .error, message(), file: file, function: function, line: line)
    }
}
