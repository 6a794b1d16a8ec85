import Foundation
import Glibc

/// File throughput in a real Linux guest (guest/bench-guest/init.c with bench.fs=1):
/// sequential 1 MiB writes and reads and create/stat/unlink cycles, on virtio-fs (Debian's
/// virtiofsd sharing a host directory) and on an ext4 disk image made in that same
/// directory, beside the same code on the host in that directory. QEMU runs the same guest
/// with `vhost-user-fs-device` on shared memfd memory and its own virtiofsd.
public struct FsThroughputBenchmark {
    public var vmmPath: String
    public var qemuPath: String?
    public var virtiofsdPath: String
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
    public var timeout: Double = 900

    public init(vmmPath: String, qemuPath: String?, virtiofsdPath: String, kernel: String, qemuCpu: String?, initramfs: String,
                hostProgram: String, extraCmdline: String, seconds: Int, diskMiB: Int, cpus: Int, memoryMiB: Int, workDirectory: String) {
        self.vmmPath = vmmPath
        self.qemuPath = qemuPath
        self.virtiofsdPath = virtiofsdPath
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
    }

    var cmdline: String { "console=ttyS0 reboot=k panic=-1 bench.fs=1 bench.seconds=\(seconds) \(extraCmdline)" }

    /// An empty ext4 image (sparse) in the work directory.
    func makeExt4(_ name: String) throws -> String {
        let path = "\(workDirectory)/\(name)"
        let mkfs = Process()
        mkfs.executableURL = URL(fileURLWithPath: "/sbin/mke2fs")
        mkfs.arguments = ["-q", "-F", "-t", "ext4", path, "\(diskMiB)M"]
        mkfs.standardOutput = FileHandle.nullDevice
        mkfs.standardError = FileHandle.nullDevice
        try mkfs.run()
        mkfs.waitUntilExit()
        guard mkfs.terminationStatus == 0 else { throw BenchError("mke2fs \(path) failed") }
        return path
    }

    /// virtiofsd sharing a fresh directory; Foundation's Process makes it a group leader,
    /// so that its forked server goes with it.
    final class Daemon {
        let process = Process()
        let socket: String
        init(executable: String, source: String, socket: String) throws {
            self.socket = socket
            unlink(socket)
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = ["--socket-path=\(socket)", "-o", "source=\(source)", "-o", "cache=auto", "-o", "sandbox=namespace"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let deadline = Date().addingTimeInterval(10)
            while !FileManager.default.fileExists(atPath: socket) {
                guard process.isRunning, Date() < deadline else { throw BenchError("virtiofsd did not listen on \(socket)") }
                usleep(10_000)
            }
        }

        func stop() {
            if process.processIdentifier > 1 { kill(-process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }

    public func guestRun(_ vmm: BootBenchmark.Vmm) throws -> DeviceThroughputBenchmark.Result {
        guard FileManager.default.isExecutableFile(atPath: virtiofsdPath) else {
            return .init(source: vmm.rawValue, figures: [:], notes: ["no virtiofsd at \(virtiofsdPath)"])
        }
        let shared = "\(workDirectory)/shared-\(vmm.rawValue)"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        let disk = try makeExt4("ext4-\(vmm.rawValue).img")
        defer {
            unlink(disk)
            try? FileManager.default.removeItem(atPath: shared)
        }
        let daemon = try Daemon(executable: virtiofsdPath, source: shared, socket: "\(workDirectory)/virtiofsd-\(vmm.rawValue).sock")
        defer { daemon.stop() }
        let (path, args): (String, [String])
        switch vmm {
        case .kataVmm:
            path = vmmPath
            args = ["--kernel", kernel, "--initrd", initramfs, "--cmdline", cmdline, "--cpus", "\(cpus)", "--memory", "\(memoryMiB)",
                    "--disk", "path=\(disk)", "--fs", "tag=bench,socket=\(daemon.socket)"]
        case .qemu:
            guard let qemuPath else { return .init(source: vmm.rawValue, figures: [:], notes: ["QEMU not available"]) }
            path = qemuPath
            // libvhost-user (virtiofsd) refuses legacy virtio, microvm's default for virtio-mmio.
            var a = ["-M", "microvm,accel=kvm,memory-backend=mem", "-global", "virtio-mmio.force-legacy=false", "-m", "\(memoryMiB)", "-smp", "\(cpus)",
                     "-object", "memory-backend-memfd,id=mem,size=\(memoryMiB)M,share=on",
                     "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
                     "-kernel", kernel, "-initrd", initramfs, "-append", cmdline,
                     "-drive", "id=d0,file=\(disk),format=raw,if=none", "-device", "virtio-blk-device,drive=d0",
                     "-chardev", "socket,id=fs0,path=\(daemon.socket)", "-device", "vhost-user-fs-device,chardev=fs0,tag=bench"]
            if let qemuCpu { a += ["-cpu", qemuCpu] }
            args = a
        }
        var notes: [String] = []
        let process = try MeasuredProcess(path, args)
        let end = process.waitFor("KATA-BENCH end=", timeout: timeout)
        let outcome = process.finish(signal: end == nil ? SIGKILL : nil, timeout: 60)
        if end == nil { notes.append("the guest did not finish within \(Int(timeout)) s (last line: \(outcome.lines.last?.text ?? "none"))") }
        let figures = DeviceThroughputBenchmark.parse(outcome.lines.map(\.text))
        // Errors are words, which `parse` leaves out.
        notes += outcome.lines.map(\.text).filter { $0.contains("KATA-BENCH ") && $0.contains("_error=") }
        return .init(source: vmm.rawValue, figures: figures, notes: notes)
    }

    public func hostRun() throws -> DeviceThroughputBenchmark.Result {
        let directory = "\(workDirectory)/host"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let process = try MeasuredProcess(hostProgram, ["--host-fs", directory, "\(seconds)"])
        let outcome = process.finish(timeout: Double(seconds) * 4 + 30)
        return .init(source: "host", figures: DeviceThroughputBenchmark.parse(outcome.lines.map(\.text)), notes: [])
    }
}
