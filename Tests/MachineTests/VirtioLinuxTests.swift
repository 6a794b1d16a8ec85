import Foundation
import TestSupport
import Testing

extension LinuxGuestTests {
    /// Real Linux drivers against our virtio devices: virtio-rng and three virtio-blk disks
    /// (sync engine, AIO engine, read-only), found once through ACPI and once through the
    /// kernel command line. The command-line boot ends by SIGKILL right after the guest's
    /// flushed writes, and the data must be in the host files.
    @Suite struct VirtioLinuxTests {
        struct Disk {
            var serial: String
            var file: URL
            var mib: Int
            var options: String
            var seed: Int { serial.utf8.reduce(0) { $0 + Int($1) } }
        }

        /// The pattern guest/virtio-test/init.c writes and expects.
        static func pattern(count: Int, offset: Int, seed: Int) -> [UInt8] {
            (0..<count).map { UInt8(truncatingIfNeeded: $0 + (offset / 512) * 7 + seed) }
        }

        static func makeDisks(_ tag: String) throws -> [Disk] {
            let dir = Fixtures.scratch.appendingPathComponent("virtio-\(tag)-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let disks = [
                Disk(serial: "data0", file: dir.appendingPathComponent("data0.img"), mib: 8, options: ""),
                Disk(serial: "big1", file: dir.appendingPathComponent("big1.img"), mib: 8, options: ",engine=aio"),
                Disk(serial: "ro0", file: dir.appendingPathComponent("ro0.img"), mib: 4, options: ",readonly=on"),
            ]
            for disk in disks {
                var bytes = pattern(count: 512, offset: 0, seed: disk.seed)
                bytes += [UInt8](repeating: 0, count: disk.mib << 20 - 512)
                try Data(bytes).write(to: disk.file)
            }
            return disks
        }

        static func report(_ stdout: String) -> [String: [String]] {
            GuestReport(stdout, prefix: "KATA-VIRTIO").values
        }

        /// Checks what the guest reported and what reached the host files; returns the
        /// device list the guest saw.
        static func verify(_ result: Command.Result, disks: [Disk], sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
            let report = report(result.stdout)
            #expect(report["begin"] == ["1"], "\(result.stdout.suffix(3000))", sourceLocation: sourceLocation)
            #expect(report["devices"] == ["4"], sourceLocation: sourceLocation)
            #expect(report["rng_current"] == ["virtio_rng.0"], sourceLocation: sourceLocation)
            #expect(report["rng_read"] == ["64 nonzero=255"] || (report["rng_read"]?.first?.hasPrefix("64 nonzero=") ?? false),
                    sourceLocation: sourceLocation)
            #expect(report["disk.data0"]?.first?.hasSuffix("size=8388608 ro=0 sector0=pattern write4k=ok write1m=skipped") == true,
                    "\(report)", sourceLocation: sourceLocation)
            #expect(report["disk.big1"]?.first?.hasSuffix("size=8388608 ro=0 sector0=pattern write4k=ok write1m=ok") == true,
                    "\(report)", sourceLocation: sourceLocation)
            #expect(report["disk.ro0"]?.first?.hasSuffix("size=4194304 ro=1 sector0=pattern write=write-refused") == true,
                    "\(report)", sourceLocation: sourceLocation)
            // The host files hold what the guest wrote, and the read-only one is untouched.
            for disk in disks {
                let data = try [UInt8](Data(contentsOf: disk.file))
                #expect(Array(data[0..<512]) == pattern(count: 512, offset: 0, seed: disk.seed), sourceLocation: sourceLocation)
                let small = Array(data[64 * 512..<64 * 512 + 4096])
                if disk.serial == "ro0" {
                    #expect(data[512...].allSatisfy { $0 == 0 }, "read-only disk was modified", sourceLocation: sourceLocation)
                } else {
                    #expect(small == pattern(count: 4096, offset: 64 * 512, seed: disk.seed), "\(disk.serial)", sourceLocation: sourceLocation)
                }
                if disk.serial == "big1" {
                    #expect(Array(data[2048 * 512..<2048 * 512 + (1 << 20)]) == pattern(count: 1 << 20, offset: 2048 * 512, seed: disk.seed),
                            sourceLocation: sourceLocation)
                }
            }
            return (report["device"] ?? []).map { $0.split(separator: " ").last.map(String.init) ?? "" }.sorted()
        }

        @Test(.timeLimit(.minutes(15)))
        func linuxDriversFindAndUseTheDevicesBothWays() throws {
            guard let kernel = try Fixtures.sharedKernel() else { try Fixtures.missing("shared/guest-kernel/vmlinux.xz") }
            let initramfs = try Fixtures.virtioInitramfs()
            let base = "console=ttyS0 reboot=k panic=-1 pci=off \(Fixtures.sharedKernelCmdline)"
            func arguments(_ disks: [Disk], cmdline: String, discovery: String) -> [String] {
                ["--kernel", kernel.path, "--initrd", initramfs.path, "--cpus", "2", "--memory", "256", "--rng",
                 "--cmdline", cmdline, "--virtio-discovery", discovery]
                    + disks.flatMap { ["--disk", "path=\($0.file.path),id=\($0.serial)\($0.options)"] }
            }

            // 1. ACPI discovery (LNRO0005 in the DSDT), ending in an ACPI poweroff.
            let acpiDisks = try Self.makeDisks("acpi")
            let acpi = try Command.run(Fixtures.kataVmm.path, arguments(acpiDisks, cmdline: base, discovery: "acpi"), timeout: 420)
            #expect(acpi.status == 0, "exit \(acpi.status)\n\(acpi.stderr)\n\(acpi.stdout.suffix(3000))")
            #expect(!acpi.stdout.contains("virtio_mmio.device="))
            let acpiFound = try Self.verify(acpi, disks: acpiDisks)
            #expect(Self.report(acpi.stdout)["end"] == ["1"])

            // 2. Command-line discovery (MP table interrupts: acpi=off). The guest flushes its
            //    writes, says so, and the VMM is killed at once: nothing acknowledged may be lost.
            let cmdlineDisks = try Self.makeDisks("cmdline")
            let cmdline = try Command.run(Fixtures.kataVmm.path,
                                          arguments(cmdlineDisks, cmdline: base + " acpi=off kata.after=hang", discovery: "cmdline"),
                                          timeout: 420, killOn: "KATA-VIRTIO flushed=1")
            #expect(cmdline.killedOnMarker, "\(cmdline.stderr)\n\(cmdline.stdout.suffix(3000))")
            #expect(cmdline.stdout.contains("virtio_mmio.device=512@0xc0001000:5"))
            let cmdlineFound = try Self.verify(cmdline, disks: cmdlineDisks)

            // The same devices both ways.
            #expect(acpiFound == ["type=0x0002", "type=0x0002", "type=0x0002", "type=0x0004"])
            #expect(cmdlineFound == acpiFound)
        }
    }
}
