import Foundation
import TestSupport
import Testing

/// Every bad input to `kata-vmm` gets one clear line on stderr and a non-zero exit.
@Suite struct CommandLineErrorTests {
    static let vmmError: Int32 = 1
    static let usageError: Int32 = 64

    func run(_ arguments: [String]) throws -> Command.Result {
        try Command.run(Fixtures.kataVmm.path, arguments, timeout: 30)
    }

    func expectOneLine(_ result: Command.Result, status: Int32, containing fragment: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.status == status, "\(result.stderr)", sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.contains(fragment), "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stdout == "", sourceLocation: sourceLocation)
    }

    func file(_ bytes: [UInt8]) throws -> URL {
        let url = Fixtures.scratch.appendingPathComponent("input-\(UUID().uuidString)")
        try Data(bytes).write(to: url)
        return url
    }

    @Test func missingAndUnreadableFiles() throws {
        expectOneLine(try run(["--kernel", "/nonexistent/vmlinux"]), status: Self.vmmError,
                      containing: "cannot open kernel '/nonexistent/vmlinux': No such file or directory")
        expectOneLine(try run(["--kernel", "/tmp"]), status: Self.vmmError, containing: "kernel '/tmp' is not a regular file")
        let probe = try Fixtures.probeGuest()
        expectOneLine(try run(["--kernel", probe.path, "--initrd", "/nonexistent/initrd"]), status: Self.vmmError,
                      containing: "cannot open initrd '/nonexistent/initrd'")
        expectOneLine(try run(["--kernel", try file([]).path]), status: Self.vmmError, containing: "is empty")
    }

    @Test func aFileThatIsNoKernel() throws {
        expectOneLine(try run(["--kernel", try file(Array("#!/bin/sh\necho hello\n".utf8)).path]), status: Self.vmmError,
                      containing: "not a kernel image: neither an ELF file (vmlinux) nor a bzImage")
        var elf = [UInt8](repeating: 0, count: 64)
        elf[0...5] = [0x7F, 0x45, 0x4C, 0x46, 2, 1]
        elf[16] = 2; elf[18] = 40  // ARM
        expectOneLine(try run(["--kernel", try file(elf).path]), status: Self.vmmError, containing: "ELF machine 40 is not x86-64")
    }

    @Test func memoryTooSmallForKernelAndInitrd() throws {
        let probe = try Fixtures.probeGuest()
        let initrd = try file([UInt8](repeating: 1, count: 5 << 20))
        expectOneLine(try run(["--kernel", probe.path, "--initrd", initrd.path, "--memory", "4"]), status: Self.vmmError,
                      containing: "guest memory too small")
    }

    @Test func invalidSizes() throws {
        let probe = try Fixtures.probeGuest()
        expectOneLine(try run(["--kernel", probe.path, "--cpus", "33"]), status: Self.vmmError, containing: "invalid vCPU count 33")
        expectOneLine(try run(["--kernel", probe.path, "--cpus", "0"]), status: Self.vmmError, containing: "invalid vCPU count 0")
        expectOneLine(try run(["--kernel", probe.path, "--memory", "1"]), status: Self.vmmError, containing: "invalid memory size 1 MiB")
    }

    @Test func badFlags() throws {
        let probe = try Fixtures.probeGuest()
        let serial = try run(["--kernel", probe.path, "--serial", "tcp:1234"])
        #expect(serial.status == Self.usageError && serial.stderr.contains("invalid --serial 'tcp:1234'"))
        let proto = try run(["--kernel", probe.path, "--boot-protocol", "efi"])
        #expect(proto.status == Self.usageError && proto.stderr.contains("invalid --boot-protocol 'efi'"))
        let linux64 = try run(["--kernel", probe.path, "--boot-protocol", "linux64"])
        #expect(linux64.status == Self.vmmError && linux64.stderr.contains("has no 64-bit Linux boot protocol entry"))
        let missing = try run([])
        #expect(missing.status == Self.usageError && missing.stderr.contains("--kernel"))
        let version = try run(["--version"])
        #expect(version.status == 0 && version.stdout == "Firecracker-API v1.7.0 (kata-vmm 0.1.0)\n", "\(version.stdout)")
        let help = try run(["--help"])
        #expect(help.status == 0 && help.stdout.contains("Exit codes:"))
    }

    @Test func badDisks() throws {
        let probe = try Fixtures.probeGuest()
        expectOneLine(try run(["--kernel", probe.path, "--disk", "path=/nonexistent/disk.img"]), status: Self.vmmError,
                      containing: "cannot open disk '/nonexistent/disk.img': No such file or directory")
        expectOneLine(try run(["--kernel", probe.path, "--disk", "path=/tmp"]), status: Self.vmmError,
                      containing: "cannot open disk '/tmp'")
        let odd = try file([UInt8](repeating: 0, count: 1000))
        expectOneLine(try run(["--kernel", probe.path, "--disk", "path=\(odd.path)"]), status: Self.vmmError,
                      containing: "is 1000 bytes, not a multiple of 512")
        let usage = try run(["--kernel", probe.path, "--disk", "path=a,engine=spdk"])
        #expect(usage.status == Self.usageError && usage.stderr.contains("engine must be sync or aio"))
        let net = try run(["--kernel", probe.path, "--net", "tap=x,mac=zz"])
        #expect(net.status == Self.usageError && net.stderr.contains("mac must look like"))
        let vsock = try run(["--kernel", probe.path, "--vsock", "cid=1,uds=/tmp/x"])
        #expect(vsock.status == Self.usageError && vsock.stderr.contains("cid must be"))
        let discovery = try run(["--kernel", probe.path, "--virtio-discovery", "pci"])
        #expect(discovery.status == Self.usageError && discovery.stderr.contains("invalid --virtio-discovery 'pci'"))
    }

    /// /dev/kvm hidden by an empty /dev in a private mount namespace (needs root).
    @Test func kvmMissing() throws {
        try #require(getuid() == 0, "needs root (a private mount namespace)")
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"), "needs /usr/bin/unshare (util-linux)")
        let probe = try Fixtures.probeGuest()
        let result = try Command.run("/usr/bin/unshare", ["--mount", "--", "/bin/sh", "-c",
            "mount -t tmpfs tmpfs /dev && exec '\(Fixtures.kataVmm.path)' --kernel '\(probe.path)'"], timeout: 30)
        expectOneLine(result, status: Self.vmmError, containing: "/dev/kvm does not exist")
    }

    /// /dev/kvm present but not accessible to an unprivileged user: a 0600 root-owned
    /// /dev/kvm node in a private mount namespace, whatever the host's own mode is.
    @Test func kvmNotAccessible() throws {
        try #require(getuid() == 0, "needs root (a private mount namespace, then a switch to nobody)")
        for tool in ["/usr/bin/unshare", "/usr/bin/setpriv"] {
            try #require(FileManager.default.isExecutableFile(atPath: tool), "needs \(tool) (util-linux)")
        }
        let probe = try Fixtures.probeGuest()
        let copy = URL(fileURLWithPath: "/tmp/kata-probe-\(getpid()).elf")
        try? FileManager.default.removeItem(at: copy)
        try FileManager.default.copyItem(at: probe, to: copy)
        defer { try? FileManager.default.removeItem(at: copy) }
        let vmm = URL(fileURLWithPath: "/tmp/kata-vmm-\(getpid())")
        try? FileManager.default.removeItem(at: vmm)
        try FileManager.default.copyItem(at: Fixtures.kataVmm, to: vmm)
        defer { try? FileManager.default.removeItem(at: vmm) }
        let result = try Command.run("/usr/bin/unshare", ["--mount", "--", "/bin/sh", "-c",
            "mount -t tmpfs tmpfs /dev && mknod -m 600 /dev/kvm c 10 232 && exec /usr/bin/setpriv --reuid=65534 --regid=65534 "
            + "--clear-groups -- '\(vmm.path)' --kernel '\(copy.path)'"], timeout: 30)
        expectOneLine(result, status: Self.vmmError, containing: "/dev/kvm is not accessible: permission denied")
    }
}
