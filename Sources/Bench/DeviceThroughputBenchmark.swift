import Foundation
import Glibc
import LinuxSupport
import Synchronization

/// Device-model throughput in a real Linux guest (guest/bench-guest/init.c as its only
/// program): virtio-blk 4 KiB random reads and 1 MiB sequential writes, and a vsock stream
/// to the host, each beside the same operation on the host by the same code. QEMU runs the
/// block figures on the same kernel and disk where it can; its vsock needs vhost-vsock.
public struct DeviceThroughputBenchmark {
    public var guest: ThroughputGuest

    public init(guest: ThroughputGuest) { self.guest = guest }

    static let vsockPort: UInt32 = 5201

    /// A disk image with every block written, so that reads hit real extents, not holes.
    func makeDisk(_ name: String) throws -> String {
        let path = "\(guest.workDirectory)/\(name)"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BenchError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        for i in 0..<guest.diskMiB {
            chunk[0] = UInt8(truncatingIfNeeded: i)
            guard write(fd, chunk, chunk.count) == chunk.count else { throw BenchError("cannot write \(path): \(String(cString: strerror(errno)))") }
        }
        fsync(fd)
        return path
    }

    public func guestRun(_ vmm: BootBenchmark.Vmm) throws -> ThroughputResult {
        let disk = try makeDisk("disk-\(vmm.rawValue).img")
        defer { unlink(disk) }
        let cmdline = guest.cmdline("bench.vsock_port=\(Self.vsockPort)")
        var notes: [String] = []
        var listener: VsockStreamSink?
        let (path, args): (String, [String])
        switch vmm {
        case .kataVmm:
            let uds = "\(guest.workDirectory)/vsock.sock"
            listener = try VsockStreamSink(path: "\(uds)_\(Self.vsockPort)")
            path = guest.vmmPath
            args = guest.kataVmmArguments(cmdline: cmdline, disk: disk, extra: ["--vsock", "cid=3,uds=\(uds)"])
        case .qemu:
            guard let qemuPath = guest.qemuPath else { return ThroughputResult(source: vmm.rawValue, figures: [:], notes: ["QEMU not available"]) }
            path = qemuPath
            args = guest.qemuArguments(cmdline: cmdline, disk: disk)
            notes.append("QEMU vsock: not measured (microvm's vsock is vhost-vsock, which needs the host's /dev/vhost-vsock)")
        }
        let run = try guest.boot(path, args)
        notes += run.notes
        var figures = run.figures
        if let received = listener?.finish() {
            figures["vsock_host_received_bytes"] = Double(received.bytes)
            if received.seconds > 0 { figures["vsock_host_mibs"] = Double(received.bytes) / 1_048_576 / received.seconds }
        }
        return ThroughputResult(source: vmm.rawValue, figures: figures, notes: notes)
    }

    public func hostRun() throws -> ThroughputResult {
        let disk = try makeDisk("disk-host.img")
        defer { unlink(disk) }
        let figures = try guest.hostFigures([["--host-file", disk, "\(guest.seconds)"], ["--host-stream", "\(guest.seconds)"]])
        return ThroughputResult(source: "host", figures: figures, notes: [])
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
