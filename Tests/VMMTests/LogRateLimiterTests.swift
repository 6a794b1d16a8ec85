import Logging
import Synchronization
import Testing
import VMM

@Suite struct LogRateLimiterTests {
    /// A clock the test moves by hand.
    final class ManualClock: Sendable {
        let now = Atomic<UInt64>(1_000)
        func advance(_ nanos: UInt64) { now.add(nanos, ordering: .relaxed) }
        var clock: LogRateLimiter.Clock { { self.now.load(ordering: .relaxed) } }
    }

    @Test func admitsABurstThenReportsWhatItSuppressed() {
        let time = ManualClock()
        let limiter = LogRateLimiter(burst: 3, interval: 1_000_000_000, clock: time.clock)
        #expect((0..<3).map { _ in limiter.admit() } == [0, 0, 0])
        #expect((0..<5).map { _ in limiter.admit() } == [nil, nil, nil, nil, nil])
        time.advance(999_999_999)
        #expect(limiter.admit() == nil)
        time.advance(1)
        // A new interval: the first line says six were dropped.
        #expect(limiter.admit() == 6)
        #expect(limiter.admit() == 0)
        time.advance(5_000_000_000)
        #expect(limiter.admit() == 0)
    }

    /// The lines actually written, through a real swift-log handler.
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        var all: [String] { lines.withLock { $0 } }
    }

    struct CollectingHandler: LogHandler {
        let lines: Lines
        var logLevel: Logger.Level = .info
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
                 file: String, function: String, line: UInt) {
            lines.lines.withLock { $0.append("\(level): \(message)") }
        }
    }

    @Test func aFloodBecomesABurstAndOneSuppressedLine() {
        let time = ManualClock()
        let lines = Lines()
        let logger = Logger(label: "test") { _ in CollectingHandler(lines: lines) }
        let log = RateLimitedLogger(logger, burst: 2, interval: 1_000_000_000, clock: time.clock)
        var built = 0
        for i in 0..<1000 {
            log.warning("bad chain \(i)")
        }
        log.log(level: .debug, "below the level: \({ built += 1; return "x" }())")
        #expect(built == 0)
        time.advance(1_000_000_000)
        log.warning("after")
        #expect(lines.all == [
            "warning: bad chain 0", "warning: bad chain 1",
            "warning: 998 similar messages suppressed (rate limit: 2 per 1 s)", "warning: after",
        ])
    }
}
