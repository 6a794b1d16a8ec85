import ArgumentParser
import Bench
import Foundation

/// The options every subcommand takes, and what they resolve to: the guest (building the
/// probe when no --kernel is given), the kata-vmm and QEMU binaries, the concurrency levels.
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
    @Option(help: "File throughput: the virtiofsd both VMMs use.") var virtiofsd: String = "/usr/lib/qemu/virtiofsd"
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
