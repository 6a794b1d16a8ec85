import Synchronization

/// How many times one vCPU left the guest, by kind: what the metrics report as
/// `vcpu.exit_*`. Relaxed atomics: the vCPU thread adds, the metrics writer reads, and
/// neither waits for the other.
public final class VcpuExitCounters: Sendable {
    public enum Kind: Int, CaseIterable, Sendable {
        case ioIn, ioOut, mmioRead, mmioWrite, systemEvent, interrupted, failure

        /// The metric name (Firecracker's where it has one).
        public var metricName: String {
            switch self {
            case .ioIn: return "exit_io_in"
            case .ioOut: return "exit_io_out"
            case .mmioRead: return "exit_mmio_read"
            case .mmioWrite: return "exit_mmio_write"
            case .systemEvent: return "exit_system_event"
            case .interrupted: return "exit_interrupted"
            case .failure: return "failures"
            }
        }
    }

    private let ioIn = Atomic<UInt64>(0), ioOut = Atomic<UInt64>(0)
    private let mmioRead = Atomic<UInt64>(0), mmioWrite = Atomic<UInt64>(0)
    private let systemEvent = Atomic<UInt64>(0), interrupted = Atomic<UInt64>(0), failure = Atomic<UInt64>(0)

    public init() {}

    @inline(__always)
    public func count(_ kind: Kind) {
        switch kind {
        case .ioIn: ioIn.wrappingAdd(1, ordering: .relaxed)
        case .ioOut: ioOut.wrappingAdd(1, ordering: .relaxed)
        case .mmioRead: mmioRead.wrappingAdd(1, ordering: .relaxed)
        case .mmioWrite: mmioWrite.wrappingAdd(1, ordering: .relaxed)
        case .systemEvent: systemEvent.wrappingAdd(1, ordering: .relaxed)
        case .interrupted: interrupted.wrappingAdd(1, ordering: .relaxed)
        case .failure: failure.wrappingAdd(1, ordering: .relaxed)
        }
    }

    public func value(_ kind: Kind) -> UInt64 {
        switch kind {
        case .ioIn: return ioIn.load(ordering: .relaxed)
        case .ioOut: return ioOut.load(ordering: .relaxed)
        case .mmioRead: return mmioRead.load(ordering: .relaxed)
        case .mmioWrite: return mmioWrite.load(ordering: .relaxed)
        case .systemEvent: return systemEvent.load(ordering: .relaxed)
        case .interrupted: return interrupted.load(ordering: .relaxed)
        case .failure: return failure.load(ordering: .relaxed)
        }
    }
}
