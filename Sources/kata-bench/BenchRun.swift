import ArgumentParser
import Bench
import Foundation

/// One kata-bench invocation: resolves the options into benchmarks, runs the chosen ones
/// through `BenchRunner`, prints the tables and writes the charts and the JSON asked for.
enum BenchRun {
    /// Builds the bench guest and a work directory for a throughput benchmark, hands them to
    /// `body` and removes them afterwards; skipped (with a line saying so) for the probe guest.
    static func withThroughputGuest(_ options: CommonOptions, _ bench: BootBenchmark, _ name: String, diskMiB: Int,
                                    _ body: (ThroughputGuest) throws -> Void) throws {
        guard let kernel = options.kernel else {
            print("\(name) throughput: needs a real guest kernel (--kernel); skipped with the probe guest")
            return
        }
        let built = try options.buildBenchGuest()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("kata-bench-\(name)-\(getpid())").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: work)
            unlink(built.initramfs)
            unlink(built.host)
        }
        try body(ThroughputGuest(vmmPath: bench.vmmPath, qemuPath: bench.qemuPath, kernel: kernel, qemuCpu: options.qemuCpu,
                                 initramfs: built.initramfs, hostProgram: built.host, extraCmdline: options.cmdline,
                                 seconds: options.seconds, diskMiB: diskMiB, cpus: options.cpus, memoryMiB: options.memory,
                                 workDirectory: work, timeout: options.timeout))
    }

    static func devices(_ options: CommonOptions, _ bench: BootBenchmark, into report: inout BenchReport) throws {
        try withThroughputGuest(options, bench, "device", diskMiB: options.diskMib) { guest in
            try BenchRunner.devices(DeviceThroughputBenchmark(guest: guest), into: &report)
        }
    }

    /// The same guest program in its file mode, with Debian's virtiofsd; the ext4 image
    /// needs room for its file (at least 512 MiB, sparse).
    static func fs(_ options: CommonOptions, _ bench: BootBenchmark, into report: inout BenchReport) throws {
        try withThroughputGuest(options, bench, "file", diskMiB: max(options.diskMib, 512)) { guest in
            try BenchRunner.fs(FsThroughputBenchmark(guest: guest, virtiofsdPath: options.virtiofsd), into: &report)
        }
    }

    /// Finds kata-runtime (beside kata-bench unless given) and runc, in a work directory
    /// removed afterwards.
    static func container(_ options: CommonOptions, into report: inout BenchReport) throws {
        let runtime = options.runtime ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("kata-runtime").path
        guard FileManager.default.isExecutableFile(atPath: runtime) else { throw ValidationError("no kata-runtime at \(runtime)") }
        let runc = FileManager.default.isExecutableFile(atPath: options.runc) ? options.runc : nil
        if runc == nil { print("runc: not available at \(options.runc); its column says so") }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("kata-bench-container-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: work) }
        let bench = ContainerStartBenchmark(kataRuntime: runtime, kataConfig: options.runtimeConfig, runc: runc,
                                            workDirectory: work, timeout: options.timeout)
        try BenchRunner.container(bench, runs: options.containerRuns, into: &report)
    }

    static func run(_ options: CommonOptions, start: Bool = false, boot: Bool, memory: Bool, creation: Bool = false, devices: Bool = false,
                    fs: Bool = false, container: Bool = false) throws {
        let bench = try options.benchmark()
        var report = BenchReport(machine: .current(), guest: bench.guest.isProbe ? "probe" : bench.guest.kernel,
                                 cpus: options.cpus, memoryMiB: options.memory)
        if start { try BenchRunner.start(bench, runs: options.runs, into: &report) }
        if boot { try BenchRunner.boot(bench, runs: options.runs, into: &report) }
        if memory { try BenchRunner.memory(bench, runs: options.runs, into: &report) }
        if creation { BenchRunner.creation(bench, levels: try options.concurrencyLevels(), vms: options.vms, into: &report) }
        if devices { try Self.devices(options, bench, into: &report) }
        if fs { try Self.fs(options, bench, into: &report) }
        if container { try Self.container(options, into: &report) }
        print((start || boot || memory ? report.vmmTable : "") + report.creationTable + report.devicesTable + report.fsTable + report.containerTable)
        if let plot = options.plot {
            for png in try GnuplotCharts(report: report).write(to: plot) { print("chart: \(png)") }
        }
        if let json = options.json {
            try report.json().write(to: URL(fileURLWithPath: json))
        }
    }
}
