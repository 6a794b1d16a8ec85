import Foundation

/// Runs the benchmarks into a report: kata-vmm and QEMU alternately, so that drift on a
/// shared machine hits both alike, with a progress bar on stderr, and then the summaries
/// of what was measured.
public enum BenchRunner {
    static func progress(_ done: Int, _ total: Int, _ label: String) {
        let width = 30
        let filled = total == 0 ? width : done * width / total
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write("\r[\(bar)] \(done)/\(total) \(label)   ".data(using: .utf8)!)
        if done == total { FileHandle.standardError.write("\n".data(using: .utf8)!) }
    }

    public static func boot(_ bench: BootBenchmark, runs: Int, into report: inout BenchReport) throws {
        for i in 0..<runs {
            for vmm in BootBenchmark.Vmm.allCases {
                progress(i * 2 + (vmm == .kataVmm ? 0 : 1), runs * 2, "boot \(vmm.rawValue)")
                if let sample = try bench.bootSample(vmm) { report.bootSamples.append(sample) }
            }
        }
        progress(runs * 2, runs * 2, "boot")
        for vmm in BootBenchmark.Vmm.allCases {
            let samples = report.bootSamples.filter { $0.vmm == vmm }
            var stats: [String: Statistics] = [:]
            stats["marker_ms"] = Statistics(samples.compactMap(\.markerMs))
            stats["boot_timer_ms"] = Statistics(samples.compactMap(\.bootTimerMs))
            stats["cpu_ms"] = Statistics(samples.map(\.cpuMs))
            report.summary["boot/\(vmm.rawValue)"] = stats
        }
    }

    public static func start(_ bench: BootBenchmark, runs: Int, into report: inout BenchReport) throws {
        let start = StartBenchmark(boot: bench, socketDirectory: FileManager.default.temporaryDirectory.path)
        for i in 0..<runs {
            for vmm in BootBenchmark.Vmm.allCases {
                progress(i * 2 + (vmm == .kataVmm ? 0 : 1), runs * 2, "start \(vmm.rawValue)")
                if let sample = try start.sample(vmm) { report.startSamples.append(sample) }
            }
        }
        progress(runs * 2, runs * 2, "start")
        for vmm in BootBenchmark.Vmm.allCases {
            let samples = report.startSamples.filter { $0.vmm == vmm }
            guard !samples.isEmpty else { continue }
            report.summary["start/\(vmm.rawValue)"] = [
                "api_ready_ms": Statistics(samples.compactMap(\.apiReadyMs)),
                "cpu_ms": Statistics(samples.compactMap(\.cpuMs)),
            ].compactMapValues { $0 }
        }
    }

    public static func memory(_ bench: BootBenchmark, runs: Int, into report: inout BenchReport) throws {
        for i in 0..<runs {
            for vmm in BootBenchmark.Vmm.allCases {
                progress(i * 2 + (vmm == .kataVmm ? 0 : 1), runs * 2, "memory \(vmm.rawValue)")
                if let sample = try bench.memorySample(vmm) { report.memorySamples[vmm.rawValue, default: []].append(sample) }
            }
        }
        progress(runs * 2, runs * 2, "memory")
        for (vmm, samples) in report.memorySamples {
            report.summary["memory/\(vmm)"] = [
                "rss_kib": Statistics(samples.map { Double($0.rssKiB) }),
                "pss_kib": Statistics(samples.map { Double($0.pssKiB) }),
                "overhead_rss_kib": Statistics(samples.map { Double($0.overheadRssKiB) }),
                "overhead_pss_kib": Statistics(samples.map { Double($0.overheadPssKiB) }),
                "guest_resident_kib": Statistics(samples.map { Double($0.guestResidentKiB) }),
            ].compactMapValues { $0 }
        }
    }

    public static func creation(_ bench: BootBenchmark, levels: [Int], vms: Int, into report: inout BenchReport) {
        let rate = CreationRateBenchmark(boot: bench)
        let total = levels.count * BootBenchmark.Vmm.allCases.count
        var done = 0
        for level in levels {
            for vmm in BootBenchmark.Vmm.allCases {
                progress(done, total, "creation \(vmm.rawValue) x\(level)")
                if let sample = rate.run(vmm, concurrency: level, vms: vms) { report.creationSamples.append(sample) }
                done += 1
            }
        }
        progress(total, total, "creation")
    }

    /// The host run, then one Linux boot per VMM; the caller owns the guest and work files.
    public static func devices(_ devices: DeviceThroughputBenchmark, into report: inout BenchReport) throws {
        report.devices += try throughput("devices", host: devices.hostRun, guest: devices.guestRun)
    }

    public static func fs(_ fs: FsThroughputBenchmark, into report: inout BenchReport) throws {
        report.fs += try throughput("fs", host: fs.hostRun, guest: fs.guestRun)
    }

    static func throughput(_ name: String, host: () throws -> ThroughputResult,
                           guest: (BootBenchmark.Vmm) throws -> ThroughputResult) throws -> [ThroughputResult] {
        progress(0, 3, "\(name) host")
        let onHost = try host()
        progress(1, 3, "\(name) kata-vmm (a Linux boot)")
        let onKataVmm = try guest(.kataVmm)
        progress(2, 3, "\(name) qemu (a Linux boot)")
        let onQemu = try guest(.qemu)
        progress(3, 3, name)
        return [onHost, onKataVmm, onQemu]
    }

    /// Makes the bundle, then `runs` rounds of every runtime; failed runs are kept as samples
    /// but left out of the summary.
    public static func container(_ bench: ContainerStartBenchmark, runs: Int, into report: inout BenchReport) throws {
        try bench.makeBundle()
        let total = runs * bench.runtimes.count
        for i in 0..<runs {
            for (j, r) in bench.runtimes.enumerated() {
                progress(i * bench.runtimes.count + j, total, "container \(r.name)")
                report.containerSamples.append(try bench.sample(i, runtime: r))
            }
        }
        progress(total, total, "container")
        for name in ["kata-runtime", "runc"] {
            let ok = report.containerSamples.filter { $0.runtime == name && $0.exitStatus == 0 }
            if let stats = Statistics(ok.map(\.wallMs)) { report.summary["container/\(name)"] = ["run_true_ms": stats] }
        }
    }
}
