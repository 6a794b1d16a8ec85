import Foundation
import TestSupport
import Testing

extension LinuxGuestTests {
    /// Linux's virtiofs driver against our virtio-fs device and Debian's virtiofsd, one
    /// boot (guest/fs-test/init.c does every guest-side step in one process): what either
    /// side writes the other sees, the host's new file without a remount, and the daemon
    /// killed under the running guest leaves it EIO and the VMM powering off cleanly.
    @Suite struct VirtioFsLinuxTests {
        static func report(_ console: String) -> [String: String] {
            GuestReport(console, prefix: "KATA-FS").latest
        }

        /// FNV-1a over little-endian 64-bit words, as the guest computes it.
        static func checksum(_ data: Data) -> String {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            data.withUnsafeBytes { raw in
                for i in stride(from: 0, to: raw.count - 7, by: 8) {
                    hash = (hash ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x100_0000_01b3
                }
            }
            return String(format: "%016llx", hash)
        }

        @Test(.timeLimit(.minutes(15)))
        func aSharedDirectoryIsLiveBothWaysAndOutlivesItsDaemon() throws {
            guard let kernel = try Fixtures.sharedKernel() else { try Fixtures.missing("shared/guest-kernel/vmlinux.xz") }
            let initramfs = try Fixtures.fsInitramfs()
            let daemon = try Virtiofsd(cache: "auto")
            let shared = daemon.source
            try "written by the host\n".write(toFile: shared + "/from-host.txt", atomically: true, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: shared + "/many", withIntermediateDirectories: true)
            for i in 0..<10_000 { FileManager.default.createFile(atPath: shared + "/many/f\(i)", contents: nil) }

            // The issue asks for 64 MiB; on the PVM hosts the guest kernel's copies run in
            // KVM's instruction emulator at about a quarter of a MiB per second, so 16 MiB
            // (about a minute each way) here. kata.big_mib=64 on a VMX/SVM host.
            let bigMiB = 16
            let cmdline = "console=ttyS0 reboot=k panic=-1 pci=off kata.big_mib=\(bigMiB) \(Fixtures.sharedKernelCmdline)"
            let vm = try BackgroundCommand(Fixtures.kataVmm.path, [
                "--kernel", kernel.path, "--initrd", initramfs.path, "--cpus", "2", "--memory", "256",
                "--cmdline", cmdline, "--fs", "tag=kataShared,socket=\(daemon.socketPath)",
            ])
            defer { vm.stop() }
            func waitFor(_ marker: String, timeout: Double) -> Bool {
                let deadline = Date().addingTimeInterval(timeout)
                while vm.isRunning && !vm.output.contains(marker) && Date() < deadline { usleep(50_000) }
                return vm.output.contains(marker)
            }

            // The host writes a file while the guest polls for it.
            guard waitFor("KATA-FS waiting=host-write", timeout: 600) else {
                Issue.record("the guest never reached the host-write step:\n\(vm.output.suffix(4000))")
                return
            }
            try "a host write, live\n".write(toFile: shared + "/live.txt", atomically: true, encoding: .utf8)
            // The daemon dies while nothing is in flight.
            guard waitFor("KATA-FS waiting=kill", timeout: 300) else {
                Issue.record("the guest never reached the kill step:\n\(vm.output.suffix(4000))")
                return
            }
            daemon.kill()
            let status = vm.waitForExit(timeout: 120)
            let console = vm.output
            #expect(status == 0, "kata-vmm: \(status.map(String.init) ?? "still running")\n\(console.suffix(4000))")
            let report = Self.report(console)

            // The guest's view.
            #expect(report["mount"] == "ok", "\(console.suffix(4000))")
            #expect(report["host_file"] == "written by the host")
            #expect(report["create"] == "ok" && report["rename"] == "ok" && report["mmap"] == "ok", "\(report)")
            #expect(report["link"] == "ok nlink=2" && report["symlink"] == "ok target=g2.txt", "\(report)")
            #expect(report["chmod"] == "ok mode=640" && report["chown"] == "ok owner=1234:5678" && report["truncate"] == "ok size=4", "\(report)")
            #expect(report["many"] == "10000")
            #expect(report["live"] == "a host write, live")
            #expect(report["after_kill"] == "\(EIO)", "\(report)")
            #expect(report["end"] == "1")

            // The host's view of what the guest did.
            let fm = FileManager.default
            #expect(!fm.fileExists(atPath: shared + "/g1.txt"))
            #expect(try String(contentsOfFile: shared + "/g2.txt", encoding: .utf8) == "gues")
            let attributes = try fm.attributesOfItem(atPath: shared + "/g2.txt")
            #expect((attributes[.posixPermissions] as? Int) == 0o640)
            #expect((attributes[.ownerAccountID] as? Int) == 1234 && (attributes[.groupOwnerAccountID] as? Int) == 5678)
            #expect((attributes[.referenceCount] as? Int) == 2)
            #expect(try fm.destinationOfSymbolicLink(atPath: shared + "/sym") == "g2.txt")
            let mapped = try [UInt8](Data(contentsOf: URL(fileURLWithPath: shared + "/mm.bin")))
            #expect(mapped == (0..<8192).map { UInt8(truncatingIfNeeded: $0 * 3) })
            let big = try Data(contentsOf: URL(fileURLWithPath: shared + "/big.bin"))
            #expect(big.count == bigMiB << 20)
            let sum = Self.checksum(big)
            #expect(report["big"] == "ok written=\(sum) read=\(sum)", "\(report)")
        }
    }
}
