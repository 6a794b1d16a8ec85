import Foundation
import TestSupport
import Testing

/// kata-vmm's Firecracker config file with a real Linux guest, nested in the serialized
/// LinuxGuestTests so that it never boots beside another Linux guest.
extension LinuxGuestTests {
    /// A Firecracker config file boots Linux with a virtio-blk drive, an entropy device and
    /// a balloon (guest/virtio-test as /init), while the API answers beside it. The guest
    /// finds the devices, reads the host's pattern from the drive and writes its own,
    /// which must be in the host file after the guest powers off; Linux's balloon driver
    /// inflates to the configured 16 MiB and sends its statistics, then runs a free page
    /// hinting round the host starts (the guest waits on the drive for the host's go);
    /// the metrics lines (periodic and at exit) count the drive's bytes and the balloon's pages.
    @Suite struct ConfigFileLinuxTests {
        static func pattern(count: Int, offset: Int, seed: Int) -> [UInt8] {
            (0..<count).map { UInt8(truncatingIfNeeded: $0 + (offset / 512) * 7 + seed) }
        }

        @Test(.timeLimit(.minutes(10)))
        func configFileBootsLinuxWithADrive() throws {
            guard let kernel = try Fixtures.sharedKernel() else { try Fixtures.missing("shared/guest-kernel/vmlinux.xz") }
            let initramfs = try Fixtures.virtioInitramfs()
            let dir = Fixtures.scratch.appendingPathComponent("api-linux-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let disk = dir.appendingPathComponent("data0.img")
            let seed = "data0".utf8.reduce(0) { $0 + Int($1) }
            try Data(Self.pattern(count: 512, offset: 0, seed: seed) + [UInt8](repeating: 0, count: (8 << 20) - 512)).write(to: disk)
            let metrics = dir.appendingPathComponent("metrics.json").path
            let cmdline = "console=ttyS0 reboot=k panic=-1 pci=off \(Fixtures.sharedKernelCmdline) kata.after=release"
            let config = dir.appendingPathComponent("vm.json")
            try Data("""
                {
                  "boot-source": {"kernel_image_path": "\(kernel.path)", "initrd_path": "\(initramfs.path)",
                                  "boot_args": "\(cmdline)"},
                  "machine-config": {"vcpu_count": 2, "mem_size_mib": 256},
                  "drives": [{"drive_id": "data0", "path_on_host": "\(disk.path)", "is_root_device": false,
                              "is_read_only": false, "io_engine": "Async"}],
                  "entropy": {},
                  "balloon": {"amount_mib": 16, "deflate_on_oom": true, "stats_polling_interval_s": 1, "free_page_hinting": true},
                  "metrics": {"metrics_path": "\(metrics)"}
                }
                """.utf8).write(to: config)

            let vmm = try VmmProcess(extra: ["--config-file", config.path])
            let info = try UnixHTTPClient.request(vmm.socket, "GET", "/")
            #expect(info.json?["state"] as? String == "Running")
            let drives = try UnixHTTPClient.request(vmm.socket, "GET", "/vm/config").json?["drives"] as? [[String: Any]]
            #expect(drives?.first?["io_engine"] as? String == "Async")

            // Linux's driver inflates at probe, early in boot: the balloon reaches its target
            // and the statistics arrive while the guest's init runs.
            var balloon: [String: Any]?
            vmm.wait(timeout: 480) {
                balloon = try? UnixHTTPClient.request(vmm.socket, "GET", "/balloon/statistics").json
                return !vmm.process.isRunning || (balloon?["actual_mib"] as? Int == 16 && balloon?["free_memory"] != nil)
            }
            #expect(balloon?["target_mib"] as? Int == 16 && balloon?["actual_mib"] as? Int == 16, "\(String(describing: balloon))")
            #expect((balloon?["total_memory"] as? Int ?? 0) > 128 << 20, "\(String(describing: balloon))")
            print("Linux's balloon statistics: \((balloon ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")

            // A free page hinting run: the driver answers the new command id, lends its free
            // blocks (given back) and sends STOP, which the device acknowledges with DONE.
            let rssBefore = vmm.residentKiB
            let start = try UnixHTTPClient.request(vmm.socket, "PATCH", "/balloon/hinting/start", body: "{}")
            #expect(start.status == 204, "\(start)")
            var hinting: [String: Any]?
            vmm.wait(timeout: 240) {
                hinting = try? UnixHTTPClient.request(vmm.socket, "GET", "/balloon/hinting/status").json
                return !vmm.process.isRunning || (hinting?["host_cmd"] as? Int == 1 && hinting?["guest_cmd"] as? Int == 0)
            }
            #expect(hinting?["host_cmd"] as? Int == 1 && hinting?["guest_cmd"] as? Int == 0, "\(String(describing: hinting))")
            let rssAfter = vmm.residentKiB
            print("free page hinting: kata-vmm RSS \(rssBefore) KiB before the run, \(rssAfter) KiB after")
            // The guest may power off now.
            let release = try FileHandle(forWritingTo: disk)
            try release.seek(toOffset: 4 << 20)
            try release.write(contentsOf: Data("KATA-GO".utf8))
            try release.synchronize()
            try release.close()
            let status = vmm.waitForExit(timeout: 480)
            let serial = vmm.serial.replacingOccurrences(of: "\r\n", with: "\n")
            #expect(status == 0, "exit \(String(describing: status))\n\(vmm.log)\n\(serial.suffix(3000))")
            #expect(serial.contains("KATA-VIRTIO devices=3\n"), "\(serial.suffix(3000))")
            #expect(serial.contains("KATA-VIRTIO rng_current=virtio_rng.0\n"))
            #expect(serial.contains("size=8388608 ro=0 sector0=pattern write4k=ok write1m=skipped\n"), "\(serial.suffix(3000))")
            #expect(serial.contains("KATA-VIRTIO released=1\n"), "\(serial.suffix(2000))")
            #expect(serial.contains("KATA-VIRTIO end=1\n"))
            let data = try [UInt8](Data(contentsOf: disk))
            #expect(Array(data[64 * 512..<64 * 512 + 4096]) == Self.pattern(count: 4096, offset: 64 * 512, seed: seed))

            // Summed over every line (periodic and at exit), the drive's counters saw the I/O.
            var read = 0, written = 0, exits = 0, inflated = 0, statsUpdates = 0, hinted = 0
            for line in try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n") {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                let block = object?["block_data0"] as? [String: Any]
                read += block?["read_bytes"] as? Int ?? 0
                written += block?["write_bytes"] as? Int ?? 0
                exits += (object?["vcpu"] as? [String: Any])?["exit_mmio_write"] as? Int ?? 0
                inflated += (object?["balloon"] as? [String: Any])?["inflate_count"] as? Int ?? 0
                statsUpdates += (object?["balloon"] as? [String: Any])?["stats_updates_count"] as? Int ?? 0
                hinted += (object?["balloon"] as? [String: Any])?["free_page_hint_freed"] as? Int ?? 0
            }
            #expect(read >= 512 && written >= 4096 && exits > 0, "read \(read) written \(written) mmio writes \(exits)")
            #expect(inflated == 4096 && statsUpdates >= 1, "balloon: \(inflated) pages inflated, \(statsUpdates) statistics updates")
            // Most of the guest's 256 MiB is free while its init waits.
            #expect(hinted >= 64 << 20, "free page hinting gave back \(hinted) bytes")
            print("free page hinting gave back \(hinted >> 20) MiB of guest RAM")
        }
    }
}
