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
        subcommands: [Boot.self, Memory.self, All.self])
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
        return BootBenchmark(vmmPath: vmmPath, qemuPath: qemuPath, guest: try guest(), cpus: cpus, memoryMiB: memory)
    }
}

/// Everything one run produced, as written to --json.
struct Report: Codable {
    var machine: MachineDescription
    var guest: String
    var cpus: Int
    var memoryMiB: Int
    var bootSamples: [BootBenchmark.Sample] = []
    var memorySamples: [String: [ProcessMemory]] = [:]
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

    static func table(_ report: Report) -> String {
        func cell(_ s: Statistics?) -> String {
            guard let s else { return "n/a" }
            return String(format: "%.1f / %.1f / %.1f", s.min, s.median, s.p90)
        }
        var rows = ["| metric (min / median / p90) | kata-vmm | QEMU microvm | ratio |", "|---|---|---|---|"]
        for (group, metrics) in [("boot", ["marker_ms", "boot_timer_ms", "cpu_ms"]),
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

    static func run(_ options: CommonOptions, boot: Bool, memory: Bool) throws {
        let bench = try options.benchmark()
        var report = Report(machine: .current(), guest: bench.guest.isProbe ? "probe" : bench.guest.kernel,
                            cpus: options.cpus, memoryMiB: options.memory)
        if boot { try Runner.boot(bench, runs: options.runs, into: &report) }
        if memory { try Runner.memory(bench, runs: options.runs, into: &report) }
        print(table(report))
        if let json = options.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }
    }
}

extension KataBench {
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

    struct All: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Boot and memory.")
        @OptionGroup var options: CommonOptions
        func run() throws { try Runner.run(options, boot: true, memory: true) }
    }
}
