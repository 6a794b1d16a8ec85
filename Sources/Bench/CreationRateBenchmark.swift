import Foundation
import Glibc

/// How many microVMs a host can bring up per second: N VMs started back to back by
/// `concurrency` workers at once, each counted when its guest prints the boot marker.
/// Reported per host core too, because that is what a density planner divides by.
public struct CreationRateBenchmark {
    public struct Sample: Codable, Sendable {
        public var vmm: BootBenchmark.Vmm
        public var concurrency: Int
        public var vms: Int
        /// VMs that never showed the marker (counted out of the rate).
        public var failures: Int
        /// First spawn to the last marker, seconds.
        public var wallSeconds: Double
        public var vmsPerSecond: Double
        public var vmsPerSecondPerCore: Double
        /// Each VM's own spawn-to-marker time, ms.
        public var perVmMs: [Double]
    }

    public var boot: BootBenchmark
    public var hostCores: Int

    public init(boot: BootBenchmark, hostCores: Int = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) {
        self.boot = boot
        self.hostCores = max(1, hostCores)
    }

    /// nil when this VMM cannot run here (QEMU missing).
    public func run(_ vmm: BootBenchmark.Vmm, concurrency: Int, vms: Int) -> Sample? {
        guard let (path, args) = boot.arguments(vmm, cmdline: boot.guest.cmdline) else { return nil }
        let state = WorkQueue(total: vms)
        let marker = boot.guest.marker
        let timeout = boot.timeout
        let start = ContinuousClock.now
        let workers = (0..<max(1, concurrency)).map { _ in
            Thread {
                while state.take() {
                    let began = ContinuousClock.now
                    guard let process = try? MeasuredProcess(path, args) else { state.record(nil); continue }
                    let seen = process.waitFor(marker, timeout: timeout)
                    let ms = seen.map { _ in Self.milliseconds(ContinuousClock.now - began) }
                    state.record(ms)
                    _ = process.finish(signal: SIGKILL, timeout: 10)
                }
                state.workerDone()
            }
        }
        workers.forEach { $0.stackSize = 1 << 20; $0.start() }
        state.waitForWorkers(workers.count)
        let times = state.times
        let wall = state.lastMarker.map { Self.milliseconds($0 - start) / 1000 } ?? 0
        let rate = wall > 0 ? Double(times.count) / wall : 0
        return Sample(vmm: vmm, concurrency: concurrency, vms: vms, failures: vms - times.count, wallSeconds: wall,
                      vmsPerSecond: rate, vmsPerSecondPerCore: rate / Double(hostCores), perVmMs: times)
    }

    static func milliseconds(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }
}

/// The shared counter the workers draw VMs from, and what they found.
private final class WorkQueue: @unchecked Sendable {  // every var read and written under `condition` (NSCondition); `times`/`lastMarker` read after all workers are done
    private let condition = NSCondition()
    private var remaining: Int
    private var finishedWorkers = 0
    private(set) var times: [Double] = []
    private(set) var lastMarker: ContinuousClock.Instant?

    init(total: Int) { remaining = total }

    func take() -> Bool {
        condition.lock(); defer { condition.unlock() }
        guard remaining > 0 else { return false }
        remaining -= 1
        return true
    }

    func record(_ ms: Double?) {
        condition.lock(); defer { condition.unlock() }
        guard let ms else { return }
        times.append(ms)
        lastMarker = ContinuousClock.now
    }

    func workerDone() {
        condition.lock()
        finishedWorkers += 1
        condition.broadcast()
        condition.unlock()
    }

    func waitForWorkers(_ count: Int) {
        condition.lock()
        while finishedWorkers < count { condition.wait() }
        condition.unlock()
    }
}
