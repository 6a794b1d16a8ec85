import ArgumentParser
import Bench
import Foundation

/// `kata-bench`: boot time and memory of kata-vmm beside QEMU microvm, alternating the two
/// in one run, reported as min/median/p90 and the ratio of the medians.
@main
struct KataBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kata-bench",
        abstract: "Measure kata-vmm beside QEMU microvm (boot time, memory overhead).",
        subcommands: [Start.self, Boot.self, Memory.self, Creation.self, Devices.self, Container.self, All.self])
}

struct CommonOptions: ParsableArguments {
    @Option(help: "Repetitions per VMM (alternating).") var runs: Int = 10
    @Option(help: "Guest kernel; default: the probe guest, built from guest/probe.") var kernel: String?
    @Option(help: "Initrd for --kernel (its init must print --marker).") var initrd: String?
    @Option(help: "Kernel command line for --kernel.") var cmdline: String = "console=ttyS0 reboot=k panic=-1 pci=off"
    @Option(help: "Serial line that marks a --kernel guest up.") var marker: String = "KATA-E2E-BEGIN"
    @Option(help: "QEMU -cpu for --kernel guests.") var qemuCpu: String?
    @Option(help: "vCPUs.") var cpus: Int = 1
    @Option(help: "Guest memory in MiB.") var memory: Int = 128
    @Option(help: "kata-vmm binary; default: the one beside kata-bench.") var vmm: String?
    @Option(help: "QEMU binary (none: skip QEMU).") var qemu: String = "/usr/bin/qemu-system-x86_64"
    @Option(help: "Write every sample and the machine description as JSON here.") var json: String?
    @Option(help: "Write PNG charts (gnuplot) into this directory.") var plot: String?
    @Option(help: "Creation rate: VMs started at once, comma-separated.") var concurrency: String = "1,2,4,8"
    @Option(help: "Creation rate: VMs per concurrency level and VMM.") var vms: Int = 16
    @Option(help: "Seconds a guest may take to reach its marker (a busy PVM host needs minutes for Linux).") var timeout: Double = 900
    @Option(help: "Device throughput: seconds per measurement.") var seconds: Int = 5
    @Option(help: "Device throughput: disk image size in MiB.") var diskMib: Int = 256
    @Option(help: "Container start: kata-runtime binary; default: the one beside kata-bench.") var runtime: String?
    @Option(help: "Container start: configuration.toml for kata-runtime (guest kernel and agent initrd); `all` measures container start only when this is given.") var runtimeConfig: String?
    @Option(help: "Container start: runc binary to compare with (none: skip).") var runc: String = "/usr/sbin/runc"
    @Option(help: "Container start: runs per runtime (each kata-runtime run boots a VM).") var containerRuns: Int = 3

    /// Builds guest/<folder>/init.c into an initramfs (guest) and a static binary (host).
    func buildBenchGuest() throws -> (initramfs: String, host: String) {
        let root = FileManager.default.currentDirectoryPath
        let source = root + "/guest/bench-guest/init.c"
        guard FileManager.default.fileExists(atPath: source) else {
            throw ValidationError("no guest/bench-guest/init.c here: run from the repository root")
        }
        let temp = FileManager.default.temporaryDirectory.path
        let initramfs = "\(temp)/kata-bench-devices-\(getpid()).cpio", host = "\(temp)/kata-bench-devices-\(getpid())-host"
        for (tool, args) in [("/bin/bash", [root + "/guest/build-static-initramfs.sh", source, initramfs]),
                             ("/usr/bin/gcc", ["-static", "-O2", "-Wall", "-Werror", "-o", host, source])] {
            let build = Process()
            build.executableURL = URL(fileURLWithPath: tool)
            build.arguments = args
            try build.run()
            build.waitUntilExit()
            guard build.terminationStatus == 0 else { throw ValidationError("building the device-throughput guest failed: \(tool) \(args)") }
        }
        return (initramfs, host)
    }

    func concurrencyLevels() throws -> [Int] {
        let levels = concurrency.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !levels.isEmpty, levels.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw ValidationError("--concurrency takes positive integers separated by commas, got '\(concurrency)'")
        }
        return levels.compactMap { $0 }
    }

    func guest() throws -> BootBenchmark.Guest {
        if let kernel {
            return BootBenchmark.Guest(kernel: kernel, initrd: initrd, cmdline: cmdline, marker: marker,
                                       idleMarker: marker, idleCmdline: cmdline, qemuCpu: qemuCpu, isProbe: false)
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("kata-bench-probe-\(getpid()).elf").path
        let script = FileManager.default.currentDirectoryPath + "/guest/probe/build.sh"
        guard FileManager.default.fileExists(atPath: script) else {
            throw ValidationError("no --kernel given and no guest/probe/build.sh here: run from the repository root")
        }
        let build = Process()
        build.executableURL = URL(fileURLWithPath: "/bin/bash")
        build.arguments = [script, out]
        try build.run()
        build.waitUntilExit()
        guard build.terminationStatus == 0 else { throw ValidationError("building the probe guest failed") }
        return .probe(out)
    }

    func benchmark() throws -> BootBenchmark {
        let vmmPath = vmm ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("kata-vmm").path
        guard FileManager.default.isExecutableFile(atPath: vmmPath) else { throw ValidationError("no kata-vmm at \(vmmPath)") }
        let qemuPath = FileManager.default.isExecutableFile(atPath: qemu) ? qemu : nil
        if qemuPath == nil { print("QEMU: not available at \(qemu); its column says so") }
        return BootBenchmark(vmmPath: vmmPath, qemuPath: qemuPath, guest: try guest(), cpus: cpus, memoryMiB: memory, timeout: timeout)
    }
}

/// Everything one run produced, as written to --json.
struct Report: Codable {
    var machine: MachineDescription
    var guest: String
    var cpus: Int
    var memoryMiB: Int
    var startSamples: [StartBenchmark.Sample] = []
    var bootSamples: [BootBenchmark.Sample] = []
    var memorySamples: [String: [ProcessMemory]] = [:]
    var creationSamples: [CreationRateBenchmark.Sample] = []
    var devices: [DeviceThroughputBenchmark.Result] = []
    var containerSamples: [ContainerStartBenchmark.Sample] = []
    var summary: [String: [String: Statistics]] = [:]
}

enum Runner {
    static func progress(_ done: Int, _ total: Int, _ label: String) {
        let width = 30
        let filled = total == 0 ? width : done * width / total
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write("\r[\(bar)] \(done)/\(total) \(label)   ".data(using: .utf8)!)
        if done == total { FileHandle.standardError.write("\n".data(using: .utf8)!) }
    }

    static func boot(_ bench: BootBenchmark, runs: Int, into report: inout Report) throws {
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

    static func start(_ bench: BootBenchmark, runs: Int, into report: inout Report) throws {
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

    static func memory(_ bench: BootBenchmark, runs: Int, into report: inout Report) throws {
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

    static func creation(_ bench: BootBenchmark, levels: [Int], vms: Int, into report: inout Report) {
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

    static func creationTable(_ report: Report) -> String {
        guard !report.creationSamples.isEmpty else { return "" }
        var rows = ["| VMs at once | kata-vmm VMs/s (per core) | QEMU VMs/s (per core) | ratio | failures (ours/QEMU) |", "|---|---|---|---|---|"]
        let levels = Set(report.creationSamples.map(\.concurrency)).sorted()
        for level in levels {
            let ours = report.creationSamples.first { $0.concurrency == level && $0.vmm == .kataVmm }
            let qemu = report.creationSamples.first { $0.concurrency == level && $0.vmm == .qemu }
            func cell(_ s: CreationRateBenchmark.Sample?) -> String {
                s.map { String(format: "%.1f (%.1f)", $0.vmsPerSecond, $0.vmsPerSecondPerCore) } ?? "QEMU not available"
            }
            let ratio = ours.flatMap { o in qemu.map { q in q.vmsPerSecond > 0 ? String(format: "%.2f", o.vmsPerSecond / q.vmsPerSecond) : "n/a" } } ?? "n/a"
            rows.append("| \(level) | \(cell(ours)) | \(cell(qemu)) | \(ratio) | \(ours?.failures ?? 0)/\(qemu.map { "\($0.failures)" } ?? "-") |")
        }
        return "\n\n" + rows.joined(separator: "\n")
    }

    static func devices(_ options: CommonOptions, _ bench: BootBenchmark, into report: inout Report) throws {
        guard let kernel = options.kernel else {
            print("device throughput: needs a real guest kernel (--kernel); skipped with the probe guest")
            return
        }
        let built = try options.buildBenchGuest()
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("kata-bench-devices-\(getpid())").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: work)
            unlink(built.initramfs)
            unlink(built.host)
        }
        var devices = DeviceThroughputBenchmark(
            vmmPath: bench.vmmPath, qemuPath: bench.qemuPath, kernel: kernel, qemuCpu: options.qemuCpu, initramfs: built.initramfs,
            hostProgram: built.host, extraCmdline: options.cmdline, seconds: options.seconds, diskMiB: options.diskMib,
            cpus: options.cpus, memoryMiB: options.memory, workDirectory: work)
        devices.timeout = options.timeout
        progress(0, 3, "devices host")
        report.devices.append(try devices.hostRun())
        progress(1, 3, "devices kata-vmm (a Linux boot)")
        report.devices.append(try devices.guestRun(.kataVmm))
        progress(2, 3, "devices qemu (a Linux boot)")
        report.devices.append(try devices.guestRun(.qemu))
        progress(3, 3, "devices")
    }

    static func container(_ options: CommonOptions, into report: inout Report) throws {
        let runtime = options.runtime ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("kata-runtime").path
        guard FileManager.default.isExecutableFile(atPath: runtime) else { throw ValidationError("no kata-runtime at \(runtime)") }
        let runc = FileManager.default.isExecutableFile(atPath: options.runc) ? options.runc : nil
        if runc == nil { print("runc: not available at \(options.runc); its column says so") }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("kata-bench-container-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: work) }
        let bench = ContainerStartBenchmark(kataRuntime: runtime, kataConfig: options.runtimeConfig, runc: runc,
                                            workDirectory: work, timeout: options.timeout)
        try bench.makeBundle()
        let total = options.containerRuns * bench.runtimes.count
        for i in 0..<options.containerRuns {
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

    static func containerTable(_ report: Report) -> String {
        guard !report.containerSamples.isEmpty else { return "" }
        func cell(_ name: String) -> String {
            let failed = report.containerSamples.filter { $0.runtime == name && $0.exitStatus != 0 }.count
            guard let s = report.summary["container/\(name)"]?["run_true_ms"] else {
                return report.containerSamples.contains { $0.runtime == name } ? "every run failed" : "not available"
            }
            return String(format: "%.1f / %.1f / %.1f", s.min, s.median, s.p90) + (failed > 0 ? " (\(failed) failed)" : "")
        }
        let ours = report.summary["container/kata-runtime"]?["run_true_ms"]?.median
        let theirs = report.summary["container/runc"]?["run_true_ms"]?.median
        let ratio = ours.flatMap { o in theirs.map { String(format: "%.1f", o / $0) } } ?? "n/a"
        return "\n\n| container `run` of busybox true, ms (min / median / p90) | kata-runtime | runc | ratio |\n|---|---|---|---|\n"
            + "| exec to exit | \(cell("kata-runtime")) | \(cell("runc")) | \(ratio) |"
    }

    static func devicesTable(_ report: Report) -> String {
        guard !report.devices.isEmpty else { return "" }
        func figure(_ source: String, _ key: String) -> String {
            report.devices.first { $0.source == source }?.figures[key].map { String(format: "%.1f", $0) } ?? "n/a"
        }
        var rows = ["| device throughput | kata-vmm guest | QEMU guest | host (same code) |", "|---|---|---|---|"]
        rows.append("| virtio-blk 4 KiB random read, MiB/s | \(figure("kata-vmm", "guest_blk_randread_4k_mibs")) | \(figure("qemu", "guest_blk_randread_4k_mibs")) | \(figure("host", "host_blk_randread_4k_mibs")) |")
        rows.append("| virtio-blk 4 KiB random read, IOPS | \(figure("kata-vmm", "guest_blk_randread_4k_iops")) | \(figure("qemu", "guest_blk_randread_4k_iops")) | \(figure("host", "host_blk_randread_4k_iops")) |")
        rows.append("| virtio-blk 1 MiB sequential write, MiB/s | \(figure("kata-vmm", "guest_blk_seqwrite_1m_mibs")) | \(figure("qemu", "guest_blk_seqwrite_1m_mibs")) | \(figure("host", "host_blk_seqwrite_1m_mibs")) |")
        rows.append("| vsock stream guest->host, MiB/s (host side) | \(figure("kata-vmm", "vsock_host_mibs")) | not measured | \(figure("host", "host_stream_mibs")) (Unix socket) |")
        let notes = report.devices.flatMap { r in r.notes.map { "\(r.source): \($0)" } }
        return "\n\n" + rows.joined(separator: "\n") + (notes.isEmpty ? "" : "\n" + notes.joined(separator: "\n"))
    }

    static func charts(_ report: Report, into directory: String) throws -> [String] {
        let m = report.machine
        var charts = GnuplotCharts(subtitle: "\(m.date), \(m.cpuModel), \(m.cpus) CPUs, KVM \(m.kvmFlavour); guest \(report.guest)")
        for metric in ["marker_ms", "boot_timer_ms", "cpu_ms"] {
            var samples: [BootBenchmark.Vmm: [Double]] = [:]
            for vmm in BootBenchmark.Vmm.allCases {
                let mine = report.bootSamples.filter { $0.vmm == vmm }
                let values: [Double] = switch metric {
                case "marker_ms": mine.compactMap(\.markerMs)
                case "boot_timer_ms": mine.compactMap(\.bootTimerMs)
                default: mine.map(\.cpuMs)
                }
                if !values.isEmpty { samples[vmm] = values }
            }
            if !samples.isEmpty { charts.boot.append(("boot-\(metric)", samples)) }
        }
        var ready: [BootBenchmark.Vmm: [Double]] = [:]
        for vmm in BootBenchmark.Vmm.allCases {
            let values = report.startSamples.filter { $0.vmm == vmm }.compactMap(\.apiReadyMs)
            if !values.isEmpty { ready[vmm] = values }
        }
        if !ready.isEmpty { charts.boot.insert(("start-api_ready_ms", ready), at: 0) }
        for metric in ["rss_kib", "pss_kib", "overhead_rss_kib", "overhead_pss_kib"] {
            var values: [BootBenchmark.Vmm: Double] = [:]
            for vmm in BootBenchmark.Vmm.allCases {
                if let median = report.summary["memory/\(vmm.rawValue)"]?[metric]?.median { values[vmm] = median }
            }
            if !values.isEmpty { charts.memory.append((metric.replacingOccurrences(of: "_kib", with: ""), values)) }
        }
        charts.creation = report.creationSamples
        return try charts.write(to: directory)
    }

    static func table(_ report: Report) -> String {
        func cell(_ s: Statistics?) -> String {
            guard let s else { return "n/a" }
            return String(format: "%.1f / %.1f / %.1f", s.min, s.median, s.p90)
        }
        var rows = ["| metric (min / median / p90) | kata-vmm | QEMU microvm | ratio |", "|---|---|---|---|"]
        for (group, metrics) in [("start", ["api_ready_ms", "cpu_ms"]),
                                 ("boot", ["marker_ms", "boot_timer_ms", "cpu_ms"]),
                                 ("memory", ["rss_kib", "pss_kib", "overhead_rss_kib", "overhead_pss_kib", "guest_resident_kib"])] {
            for metric in metrics {
                let ours = report.summary["\(group)/kata-vmm"]?[metric]
                let qemu = report.summary["\(group)/qemu"]?[metric]
                guard ours != nil || qemu != nil else { continue }
                let ratio = (ours?.median).flatMap { o in (qemu?.median).map { q in q > 0 ? String(format: "%.2f", o / q) : "n/a" } } ?? "n/a"
                let qemuCell = qemu == nil ? (metric == "boot_timer_ms" ? "no boot-timer device" : "n/a") : cell(qemu)
                rows.append("| \(group) \(metric) | \(cell(ours)) | \(qemuCell) | \(ratio) |")
            }
        }
        let m = report.machine
        return rows.joined(separator: "\n") + "\n\n\(m.date), \(m.cpuModel), \(m.cpus) CPUs, Linux \(m.kernel), KVM \(m.kvmFlavour); guest \(report.guest), \(report.cpus) vCPU, \(report.memoryMiB) MiB"
    }

    static func run(_ options: CommonOptions, start: Bool = false, boot: Bool, memory: Bool, creation: Bool = false, devices: Bool = false,
                    container: Bool = false) throws {
        let bench = try options.benchmark()
        var report = Report(machine: .current(), guest: bench.guest.isProbe ? "probe" : bench.guest.kernel,
                            cpus: options.cpus, memoryMiB: options.memory)
        if start { try Runner.start(bench, runs: options.runs, into: &report) }
        if boot { try Runner.boot(bench, runs: options.runs, into: &report) }
        if memory { try Runner.memory(bench, runs: options.runs, into: &report) }
        if creation { Runner.creation(bench, levels: try options.concurrencyLevels(), vms: options.vms, into: &report) }
        if devices { try Runner.devices(options, bench, into: &report) }
        if container { try Runner.container(options, into: &report) }
        print((start || boot || memory ? table(report) : "") + creationTable(report) + devicesTable(report) + containerTable(report))
        if let plot = options.plot {
            for png in try charts(report, into: plot) { print("chart: \(png)") }
        }
        if let json = options.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }
    }
}

extension KataBench {
    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "exec of the VMM to its API socket accepting (QEMU: its QMP socket, -S), wall and CPU.")
        @OptionGroup var options: CommonOptions
        func run() throws { try Runner.run(options, start: true, boot: false, memory: false) }
    }

    struct Boot: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Process start to the guest's boot marker, and CPU time.")
        @OptionGroup var options: CommonOptions
        func run() throws { try Runner.run(options, boot: true, memory: false) }
    }

    struct Memory: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "RSS/PSS after boot, idle, minus the guest's own pages.")
        @OptionGroup var options: CommonOptions
        func run() throws { try Runner.run(options, boot: false, memory: true) }
    }

    struct Creation: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "VMs up per second, started back to back by 1, 2, 4, 8 workers at once.")
        @OptionGroup var options: CommonOptions
        func run() throws { try Runner.run(options, boot: false, memory: false, creation: true) }
    }

    struct Devices: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "virtio-blk and vsock throughput in a real Linux guest (--kernel), beside the host.")
        @OptionGroup var options: CommonOptions
        func validate() throws {
            guard options.kernel != nil else { throw ValidationError("devices needs a real guest kernel: --kernel") }
        }
        func run() throws { try Runner.run(options, boot: false, memory: false, devices: true) }
    }

    struct Container: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "kata-runtime run of a busybox `true` bundle, beside runc run of the same bundle.")
        @OptionGroup var options: CommonOptions
        func run() throws { try Runner.run(options, boot: false, memory: false, container: true) }
    }

    struct All: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start, boot, memory and creation rate; device throughput with --kernel; container start with --runtime-config.")
        @OptionGroup var options: CommonOptions
        func run() throws {
            try Runner.run(options, start: true, boot: true, memory: true, creation: true, devices: options.kernel != nil,
                           container: options.runtimeConfig != nil)
        }
    }
}
