import Foundation
import Glibc
import LinuxSupport
import Synchronization

/// Device-model throughput in a real Linux guest (guest/bench-guest/init.c as its only
/// program): virtio-blk 4 KiB random reads and 1 MiB sequential writes, and a vsock stream
/// to the host, each beside the same operation on the host by the same code. QEMU runs the
/// block figures on the same kernel and disk where it can; its vsock needs vhost-vsock.
public struct DeviceThroughputBenchmark {
    public struct Result: Codable, Sendable {
        public var source: String
        /// "KATA-BENCH key=value" figures, plus the host side of the vsock stream.
        public var figures: [String: Double]
        /// What went wrong, in words, where a figure is missing.
        public var notes: [String]
    }

    public var vmmPath: String
    public var qemuPath: String?
    public var kernel: String
    public var qemuCpu: String?
    /// The guest's program, built for the guest (initramfs) and for the host (same code).
    public var initramfs: String
    public var hostProgram: String
    public var extraCmdline: String
    public var seconds: Int
    public var diskMiB: Int
    public var cpus: Int
    public var memoryMiB: Int
    public var workDirectory: String
    public var timeout: Double = 600

    public init(vmmPath: String, qemuPath: String?, kernel: String, qemuCpu: String?, initramfs: String, hostProgram: String,
                extraCmdline: String, seconds: Int, diskMiB: Int, cpus: Int, memoryMiB: Int, workDirectory: String) {
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
    }

    static let vsockPort: UInt32 = 5201

    /// A disk image with every block written, so that reads hit real extents, not holes.
    func makeDisk(_ name: String) throws -> String {
        let path = "\(workDirectory)/\(name)"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BenchError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        for i in 0..<diskMiB {
            chunk[0] = UInt8(truncatingIfNeeded: i)
            guard write(fd, chunk, chunk.count) == chunk.count else { throw BenchError("cannot write \(path): \(String(cString: strerror(errno)))") }
        }
        fsync(fd)
        return path
    }

    var cmdline: String {
        "console=ttyS0 reboot=k panic=-1 bench.seconds=\(seconds) bench.vsock_port=\(Self.vsockPort) \(extraCmdline)"
    }

    public func guestRun(_ vmm: BootBenchmark.Vmm) throws -> Result {
        let disk = try makeDisk("disk-\(vmm.rawValue).img")
        defer { unlink(disk) }
        var notes: [String] = []
        var listener: VsockStreamSink?
        let (path, args): (String, [String])
        switch vmm {
        case .kataVmm:
            let uds = "\(workDirectory)/vsock.sock"
            listener = try VsockStreamSink(path: "\(uds)_\(Self.vsockPort)")
            path = vmmPath
            args = ["--kernel", kernel, "--initrd", initramfs, "--cmdline", cmdline, "--cpus", "\(cpus)", "--memory", "\(memoryMiB)",
                    "--disk", "path=\(disk)", "--vsock", "cid=3,uds=\(uds)"]
        case .qemu:
            guard let qemuPath else { return Result(source: vmm.rawValue, figures: [:], notes: ["QEMU not available"]) }
            path = qemuPath
            var a = ["-M", "microvm,accel=kvm", "-m", "\(memoryMiB)", "-smp", "\(cpus)", "-nodefaults", "-no-user-config",
                     "-display", "none", "-serial", "stdio", "-no-reboot", "-kernel", kernel, "-initrd", initramfs, "-append", cmdline,
                     "-drive", "id=d0,file=\(disk),format=raw,if=none", "-device", "virtio-blk-device,drive=d0"]
            if let qemuCpu { a += ["-cpu", qemuCpu] }
            args = a
            notes.append("QEMU vsock: not measured (microvm's vsock is vhost-vsock, which needs the host's /dev/vhost-vsock)")
        }
        let process = try MeasuredProcess(path, args)
        let end = process.waitFor("KATA-BENCH end=", timeout: timeout)
        let outcome = process.finish(signal: end == nil ? SIGKILL : nil, timeout: 60)
        if end == nil { notes.append("the guest did not finish within \(Int(timeout)) s (last line: \(outcome.lines.last?.text ?? "none"))") }
        var figures = Self.parse(outcome.lines.map(\.text))
        if let received = listener?.finish() {
            figures["vsock_host_received_bytes"] = Double(received.bytes)
            if received.seconds > 0 { figures["vsock_host_mibs"] = Double(received.bytes) / 1_048_576 / received.seconds }
        }
        return Result(source: vmm.rawValue, figures: figures, notes: notes)
    }

    public func hostRun() throws -> Result {
        let disk = try makeDisk("disk-host.img")
        defer { unlink(disk) }
        var figures: [String: Double] = [:]
        for args in [["--host-file", disk, "\(seconds)"], ["--host-stream", "\(seconds)"]] {
            let process = try MeasuredProcess(hostProgram, args)
            let outcome = process.finish(timeout: Double(seconds) * 4 + 30)
            figures.merge(Self.parse(outcome.lines.map(\.text))) { $1 }
        }
        return Result(source: "host", figures: figures, notes: [])
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

/// The host end of the guest's vsock stream: kata-vmm connects to `<uds>_<port>` for a guest
/// connection to the host; this accepts it and counts bytes until the guest closes.
final class VsockStreamSink: @unchecked Sendable {  // the totals behind `totals` (Mutex); the rest is `let`
    private let fd: Int32
    private let path: String
    private let done = DispatchSemaphore(value: 0)
    /// Written by the serving thread; `finish` may read it after a timed-out wait.
    private let totals = Mutex<(bytes: Int, seconds: Double)>((0, 0))

    init(path: String) throws {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
        guard let address = UnixSocketAddress(path) else { throw BenchError("socket path too long: \(path)") }
        guard address.bind(fd) == 0, listen(fd, 1) == 0 else { throw BenchError("cannot listen on \(path): \(String(cString: strerror(errno)))") }
        Thread { [self] in self.serve() }.start()
    }

    private func serve() {
        defer { done.signal() }
        let connection = accept(fd, nil, nil)
        guard connection >= 0 else { return }
        defer { close(connection) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var first: ContinuousClock.Instant?
        var last = ContinuousClock.now
        while true {
            let n = read(connection, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if first == nil { first = ContinuousClock.now }
            totals.withLock { $0.bytes += n }
            last = ContinuousClock.now
        }
        if let first { totals.withLock { $0.seconds = CreationRateBenchmark.milliseconds(last - first) / 1000 } }
    }

    /// What arrived; gives up waiting once the VM is gone (no connection ever came).
    func finish() -> (bytes: Int, seconds: Double) {
        shutdown(fd, Int32(SHUT_RDWR))
        _ = done.wait(timeout: .now() + 5)
        close(fd)
        unlink(path)
        return totals.withLock { $0 }
    }
}
