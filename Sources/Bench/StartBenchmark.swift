import Foundation
import Glibc
import LinuxSupport

/// VMM start as Firecracker specifies it: exec of the VMM to its API socket accepting a
/// connection, in wall time and the CPU time the process used until then (Firecracker's
/// target: <= 8 CPU-ms). QEMU's counterpart is its QMP socket, with the guest not started
/// (-S), on the same guest configuration.
public struct StartBenchmark {
    public struct Sample: Codable, Sendable {
        public var vmm: BootBenchmark.Vmm
        /// exec to the first successful connect() on the API socket, ms.
        public var apiReadyMs: Double?
        /// CPU time of all the VMM's threads at that moment (from /proc/PID/task/*/schedstat), ms.
        public var cpuMs: Double?
    }

    public var boot: BootBenchmark
    public var socketDirectory: String

    public init(boot: BootBenchmark, socketDirectory: String) {
        self.boot = boot
        self.socketDirectory = socketDirectory
    }

    public func sample(_ vmm: BootBenchmark.Vmm) throws -> Sample? {
        let socket = "\(socketDirectory)/start-\(vmm.rawValue)-\(getpid()).sock"
        unlink(socket)
        defer { unlink(socket) }
        let (path, args): (String, [String])
        switch vmm {
        case .kataVmm:
            (path, args) = (boot.vmmPath, ["--api-sock", socket])
        case .qemu:
            guard let qemuPath = boot.qemuPath, let base = boot.arguments(.qemu, cmdline: boot.guest.cmdline) else { return nil }
            (path, args) = (qemuPath, base.1 + ["-S", "-qmp", "unix:\(socket),server=on,wait=off"])
        }
        let process = try MeasuredProcess(path, args)
        defer { _ = process.finish(signal: SIGKILL, timeout: 10) }
        let start = ContinuousClock.now
        let deadline = start + .seconds(boot.timeout)
        while ContinuousClock.now < deadline {
            if Self.connects(socket) {
                let ms = CreationRateBenchmark.milliseconds(ContinuousClock.now - start)
                return Sample(vmm: vmm, apiReadyMs: ms, cpuMs: Self.cpuMilliseconds(process.pid))
            }
            if kill(process.pid, 0) != 0 { break }
            usleep(100)
        }
        return Sample(vmm: vmm, apiReadyMs: nil, cpuMs: nil)
    }

    static func connects(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard let address = UnixSocketAddress(path) else { return false }
        return address.connect(fd) == 0
    }

    /// Sum of the first field (ns on CPU) of every thread's schedstat; nil if unreadable.
    static func cpuMilliseconds(_ pid: pid_t) -> Double? {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return nil }
        var nanos = 0.0
        for task in tasks {
            guard let text = MeasuredProcess.readProcFile("/proc/\(pid)/task/\(task)/schedstat"),
                  let first = text.split(separator: " ").first, let value = Double(first) else { continue }
            nanos += value
        }
        return nanos / 1e6
    }
}
