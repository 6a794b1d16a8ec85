import Glibc

/// Monotonic wall and process CPU clocks, with the two reference points boot-time
/// measurements use: process start (marked first thing in `main`) and InstanceStart.
public enum ProcessClock {
    public struct Instant: Sendable, Equatable {
        public var wallNanos: UInt64
        public var cpuNanos: UInt64
    }

    nonisolated(unsafe) private static var processStartValue: Instant?
    nonisolated(unsafe) public static var instanceStart: Instant?

    public static func now() -> Instant {
        var cpu = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu)
        return Instant(wallNanos: monotonicNanos(), cpuNanos: UInt64(cpu.tv_sec) * 1_000_000_000 + UInt64(cpu.tv_nsec))
    }

    /// CLOCK_MONOTONIC in nanoseconds: the one clock for deadlines and intervals.
    @Sendable public static func monotonicNanos() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }

    /// Call once, as early as possible in `main`.
    public static func markProcessStart() {
        if processStartValue == nil { processStartValue = now() }
    }

    /// Firecracker's `--start-time-us`, `--start-time-cpu-us` and `--parent-cpu-time-us`: a
    /// launcher (the jailer) that started the clock before exec'ing us. CPU time runs on
    /// across exec, and the parent's is added, so the reference moves back by it.
    public static func setProcessStart(monotonicMicros: UInt64, cpuMicros: UInt64?, parentCpuMicros: UInt64) {
        let cpuStart = cpuMicros.map { $0 &* 1000 } ?? (processStartValue ?? now()).cpuNanos
        processStartValue = Instant(wallNanos: monotonicMicros &* 1000, cpuNanos: cpuStart &- parentCpuMicros &* 1000)
    }

    public static var processStart: Instant {
        if let start = processStartValue { return start }
        let start = now()
        processStartValue = start
        return start
    }

    public static func markInstanceStart() {
        instanceStart = now()
    }
}
