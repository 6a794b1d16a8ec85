import Foundation
import Glibc

/// File throughput in a real Linux guest (guest/bench-guest/init.c with bench.fs=1):
/// sequential 1 MiB writes and reads and create/stat/unlink cycles, on virtio-fs (Debian's
/// virtiofsd sharing a host directory) and on an ext4 disk image made in that same
/// directory, beside the same code on the host in that directory. QEMU runs the same guest
/// with `vhost-user-fs-device` on shared memfd memory and its own virtiofsd.
public struct FsThroughputBenchmark {
    public var guest: ThroughputGuest
    public var virtiofsdPath: String

    public init(guest: ThroughputGuest, virtiofsdPath: String) {
        self.guest = guest
        self.virtiofsdPath = virtiofsdPath
    }

    /// An empty ext4 image (sparse) in the work directory.
    func makeExt4(_ name: String) throws -> String {
        let path = "\(guest.workDirectory)/\(name)"
        let mkfs = Process()
        mkfs.executableURL = URL(fileURLWithPath: "/sbin/mke2fs")
        mkfs.arguments = ["-q", "-F", "-t", "ext4", path, "\(guest.diskMiB)M"]
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

    public func guestRun(_ vmm: BootBenchmark.Vmm) throws -> ThroughputResult {
        guard FileManager.default.isExecutableFile(atPath: virtiofsdPath) else {
            return .init(source: vmm.rawValue, figures: [:], notes: ["no virtiofsd at \(virtiofsdPath)"])
        }
        let work = guest.workDirectory
        let shared = "\(work)/shared-\(vmm.rawValue)"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        let disk = try makeExt4("ext4-\(vmm.rawValue).img")
        defer {
            unlink(disk)
            try? FileManager.default.removeItem(atPath: shared)
        }
        let daemon = try Daemon(executable: virtiofsdPath, source: shared, socket: "\(work)/virtiofsd-\(vmm.rawValue).sock")
        defer { daemon.stop() }
        let cmdline = guest.cmdline("bench.fs=1")
        let (path, args): (String, [String])
        switch vmm {
        case .kataVmm:
            path = guest.vmmPath
            args = guest.kataVmmArguments(cmdline: cmdline, disk: disk, extra: ["--fs", "tag=bench,socket=\(daemon.socket)"])
        case .qemu:
            guard let qemuPath = guest.qemuPath else { return .init(source: vmm.rawValue, figures: [:], notes: ["QEMU not available"]) }
            path = qemuPath
            // libvhost-user (virtiofsd) refuses legacy virtio, microvm's default for virtio-mmio.
            args = guest.qemuArguments(cmdline: cmdline, disk: disk, machine: ",memory-backend=mem", extra: [
                "-global", "virtio-mmio.force-legacy=false",
                "-object", "memory-backend-memfd,id=mem,size=\(guest.memoryMiB)M,share=on",
                "-chardev", "socket,id=fs0,path=\(daemon.socket)", "-device", "vhost-user-fs-device,chardev=fs0,tag=bench",
            ])
        }
        let run = try guest.boot(path, args)
        // Errors are words, which `parse` leaves out.
        let errors = run.lines.filter { $0.contains("KATA-BENCH ") && $0.contains("_error=") }
        return .init(source: vmm.rawValue, figures: run.figures, notes: run.notes + errors)
    }

    public func hostRun() throws -> ThroughputResult {
        let directory = "\(guest.workDirectory)/host"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return .init(source: "host", figures: try guest.hostFigures([["--host-fs", directory, "\(guest.seconds)"]]), notes: [])
    }
}
