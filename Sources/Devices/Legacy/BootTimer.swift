import Logging
import VMM

/// Firecracker's boot-timer pseudo-device: the guest's init writes the byte 123 to MMIO
/// 0xc0000000 once it is up, and the VMM logs the wall and CPU time since process start
/// and since InstanceStart, in Firecracker's words, so existing boot-time tooling parses it.
public final class BootTimer: BusDevice, Sendable {
    public static let address = X86MemoryLayout.bootTimerAddress
    public static let size: UInt64 = 0x1000
    public static let magicValue: UInt8 = 123

    /// Time from the reference points to the guest's signal.
    public struct Measurement: Sendable, Equatable {
        public var sinceProcessStart: (wallMicros: UInt64, cpuMicros: UInt64)
        public var sinceInstanceStart: (wallMicros: UInt64, cpuMicros: UInt64)?

        public static func == (a: Measurement, b: Measurement) -> Bool {
            a.sinceProcessStart == b.sinceProcessStart
                && a.sinceInstanceStart?.wallMicros == b.sinceInstanceStart?.wallMicros
                && a.sinceInstanceStart?.cpuMicros == b.sinceInstanceStart?.cpuMicros
        }
    }

    /// The guest can write the magic byte at will: its log lines are rate limited.
    private let logger: RateLimitedLogger
    private let onMeasurement: (@Sendable (Measurement) -> Void)?

    public init(logger: Logger, onMeasurement: (@Sendable (Measurement) -> Void)? = nil) {
        self.logger = RateLimitedLogger(logger, burst: 4)
        self.onMeasurement = onMeasurement
    }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        for i in data.indices { data[i] = 0 }
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        guard offset == 0, data.count > 0, data[0] == Self.magicValue else { return }
        let now = ProcessClock.now()
        func delta(_ from: ProcessClock.Instant) -> (wallMicros: UInt64, cpuMicros: UInt64) {
            ((now.wallNanos &- from.wallNanos) / 1000, (now.cpuNanos &- from.cpuNanos) / 1000)
        }
        let measurement = Measurement(sinceProcessStart: delta(ProcessClock.processStart),
                                      sinceInstanceStart: ProcessClock.instanceStart.map(delta))
        let p = measurement.sinceProcessStart
        logger.info("Guest-boot-time = \(p.wallMicros) us \(p.wallMicros / 1000) ms, \(p.cpuMicros) CPU us \(p.cpuMicros / 1000) CPU ms")
        if let s = measurement.sinceInstanceStart {
            logger.info("Guest-boot-time since InstanceStart = \(s.wallMicros) us \(s.wallMicros / 1000) ms, \(s.cpuMicros) CPU us \(s.cpuMicros / 1000) CPU ms")
        }
        onMeasurement?(measurement)
    }
}
