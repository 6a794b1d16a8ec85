import Foundation
import Glibc

/// One throughput run's figures, from a guest on one VMM or from the host.
public struct ThroughputResult: Codable, Sendable {
    public var source: String
    /// "KATA-BENCH key=value" figures, plus what the host measured itself (vsock).
    public var figures: [String: Double]
    /// What went wrong, in words, where a figure is missing.
    public var notes: [String]
}

/// What the device and file throughput benchmarks share: one guest program
/// (guest/bench-guest/init.c, as an initramfs and as a host build), the kernel, the VM's
/// size, both VMMs, and how a run is read back ("KATA-BENCH key=value" lines).
public struct ThroughputGuest: Sendable {
    public var vmmPath: String
    public var qemuPath: String?
    public var kernel: String
    public var qemuCpu: String?
    public var initramfs: String
    public var hostProgram: String
    public var extraCmdline: String
    public var seconds: Int
    public var diskMiB: Int
    public var cpus: Int
    public var memoryMiB: Int
    public var workDirectory: String
    /// Seconds a guest may take to print its end line.
    public var timeout: Double

    public init(vmmPath: String, qemuPath: String?, kernel: String, qemuCpu: String?, initramfs: String, hostProgram: String,
                extraCmdline: String, seconds: Int, diskMiB: Int, cpus: Int, memoryMiB: Int, workDirectory: String, timeout: Double) {
        self.vmmPath = vmmPath
        self.qemuPath = qemuPath
        self.kernel = kernel
        self.qemuCpu = qemuCpu
        self.initramfs = initramfs
        self.hostProgram = hostProgram
        self.extraCmdline = extraCmdline
        self.seconds = seconds
        self.diskMiB = diskMiB
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.workDirectory = workDirectory
        self.timeout = timeout
    }

    /// The guest's command line: the serial console, a power-off at the end, `options`.
    func cmdline(_ options: String) -> String {
        "console=ttyS0 reboot=k panic=-1 bench.seconds=\(seconds) \(options) \(extraCmdline)"
    }

    /// kata-vmm booting the guest with `disk` as /dev/vda, then `extra` devices.
    func kataVmmArguments(cmdline: String, disk: String, extra: [String]) -> [String] {
        ["--kernel", kernel, "--initrd", initramfs, "--cmdline", cmdline, "--cpus", "\(cpus)", "--memory", "\(memoryMiB)",
         "--disk", "path=\(disk)"] + extra
    }

    /// QEMU microvm booting the same guest on the same disk; `machine` adds -M options.
    func qemuArguments(cmdline: String, disk: String, machine: String = "", extra: [String] = []) -> [String] {
        var arguments = ["-M", "microvm,accel=kvm" + machine, "-m", "\(memoryMiB)", "-smp", "\(cpus)", "-nodefaults", "-no-user-config",
                         "-display", "none", "-serial", "stdio", "-no-reboot", "-kernel", kernel, "-initrd", initramfs, "-append", cmdline,
                         "-drive", "id=d0,file=\(disk),format=raw,if=none", "-device", "virtio-blk-device,drive=d0"] + extra
        if let qemuCpu { arguments += ["-cpu", qemuCpu] }
        return arguments
    }

    /// Runs a VMM until the guest's end line (or the timeout): its figures, its lines, and
    /// a note when it did not finish.
    func boot(_ path: String, _ arguments: [String]) throws -> (figures: [String: Double], lines: [String], notes: [String]) {
        let process = try MeasuredProcess(path, arguments)
        let end = process.waitFor("KATA-BENCH end=", timeout: timeout)
        let outcome = process.finish(signal: end == nil ? SIGKILL : nil, timeout: 60)
        let lines = outcome.lines.map(\.text)
        let notes = end == nil ? ["the guest did not finish within \(Int(timeout)) s (last line: \(lines.last ?? "none"))"] : []
        return (Self.parse(lines), lines, notes)
    }

    /// The host build of the guest program, once per argument list, figures merged.
    func hostFigures(_ argumentLists: [[String]]) throws -> [String: Double] {
        var figures: [String: Double] = [:]
        for arguments in argumentLists {
            let outcome = try MeasuredProcess(hostProgram, arguments).finish(timeout: Double(seconds) * 4 + 30)
            figures.merge(Self.parse(outcome.lines.map(\.text))) { $1 }
        }
        return figures
    }

    /// "KATA-BENCH key=value" lines with numeric values.
    public static func parse(_ lines: [String]) -> [String: Double] {
        var figures: [String: Double] = [:]
        for line in lines {
            guard let range = line.range(of: "KATA-BENCH ") else { continue }
            let pair = line[range.upperBound...].split(separator: "=", maxSplits: 1)
            guard pair.count == 2, let value = Double(pair[1].trimmingCharacters(in: .whitespaces)) else { continue }
            figures[String(pair[0])] = value
        }
        return figures
    }
}
