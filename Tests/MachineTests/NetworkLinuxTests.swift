import Foundation
import TestSupport
import Testing

extension LinuxGuestTests {
    /// Real Linux drivers against virtio-net and virtio-vsock in one boot: the guest's eth0,
    /// on a tap in a network namespace the test makes, pings the host side and pulls 4 MiB
    /// over TCP; a guest AF_VSOCK connection reaches `<uds>_5001` (1 MiB there and back) and a
    /// host `CONNECT 5002` reaches a guest listener (1 MiB), contents checked on both sides;
    /// and the guest talks to the VMM's metadata service (MMDS V2) over eth0.
    @Suite struct NetworkLinuxTests {
        static let mac = "02:4b:41:54:41:02"

        @Test(.timeLimit(.minutes(10)))
        func guestNetworkingAndVsock() throws {
            guard let kernel = try Fixtures.sharedKernel() else { try Fixtures.missing("shared/guest-kernel/vmlinux.xz") }
            guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") else { try Fixtures.missing("root and ip") }
            let initramfs = try Fixtures.netInitramfs()
            let hostSide = Fixtures.packageRoot.appendingPathComponent("guest/net-test/host-side.py").path
            let ns = "kte\(getpid() % 100000)"
            let tap = "ktape\(getpid() % 1000)"
            func ip(_ args: [String]) throws {
                let r = try Command.run("/usr/sbin/ip", args)
                #expect(r.status == 0, "ip \(args): \(r.stderr)")
            }
            try ip(["netns", "add", ns])
            defer { _ = try? Command.run("/usr/sbin/ip", ["netns", "del", ns]) }
            _ = try Command.run("/usr/sbin/ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
            try ip(["netns", "exec", ns, "ip", "tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr"])
            try ip(["netns", "exec", ns, "ip", "addr", "add", "10.199.2.1/24", "dev", tap])
            try ip(["netns", "exec", ns, "ip", "link", "set", tap, "up"])

            let uds = Fixtures.scratch.appendingPathComponent("vsock-\(UInt16.random(in: 0...9999))").path
            defer { for path in [uds, uds + "_5001"] { unlink(path) } }
            let tcp = try BackgroundCommand("/usr/sbin/ip", ["netns", "exec", ns, "python3", hostSide, "tcp-serve", "10.199.2.1", "5000", "4194304"])
            let echo = try BackgroundCommand("/usr/bin/env", ["python3", hostSide, "vsock-echo", uds + "_5001"])
            let connect = try BackgroundCommand("/usr/bin/env", ["python3", hostSide, "vsock-connect", uds, "5002", "1048576"])
            usleep(300_000)

            // Through a config file, as MMDS has no flag: eth0 reaches the metadata service
            // (V2), which --metadata fills.
            let cmdline = "console=ttyS0 reboot=k panic=-1 pci=off \(Fixtures.sharedKernelCmdline) kata.ip=10.199.2.2 kata.peer=10.199.2.1 kata.tcp=5000:4194304 kata.vsock_out=5001:1048576 kata.vsock_in=5002:1048576 kata.mmds=169.254.169.254"
            let config: [String: Any] = [
                "boot-source": ["kernel_image_path": kernel.path, "initrd_path": initramfs.path, "boot_args": cmdline],
                "machine-config": ["vcpu_count": 2, "mem_size_mib": 256],
                "network-interfaces": [["iface_id": "eth0", "host_dev_name": tap, "guest_mac": Self.mac]],
                "vsock": ["guest_cid": 7, "uds_path": uds],
                "mmds-config": ["version": "V2", "network_interfaces": ["eth0"]],
            ]
            let metadata: [String: Any] = ["latest": ["meta-data": ["ami-id": "ami-kata", "local-ipv4": "10.199.2.2"]]]
            let configPath = Fixtures.scratch.appendingPathComponent("net-config-\(getpid()).json")
            let metadataPath = Fixtures.scratch.appendingPathComponent("net-metadata-\(getpid()).json")
            try JSONSerialization.data(withJSONObject: config).write(to: configPath)
            try JSONSerialization.data(withJSONObject: metadata).write(to: metadataPath)
            defer { for url in [configPath, metadataPath] { try? FileManager.default.removeItem(at: url) } }
            let vm = try Command.run("/usr/sbin/ip", ["netns", "exec", ns, Fixtures.kataVmm.path, "--no-api",
                                                      "--config-file", configPath.path, "--metadata", metadataPath.path], timeout: 420)
            let tcpResult = tcp.finish(timeout: 5), echoResult = echo.finish(timeout: 5), connectResult = connect.finish(timeout: 5)
            let report = GuestReport(vm.stdout, prefix: "KATA-NET").latest
            #expect(vm.status == 0, "exit \(vm.status)\n\(vm.stderr)\n\(vm.stdout.suffix(3000))")
            #expect(report["eth0"] == "up")
            #expect(report["eth0_mac"] == Self.mac)
            #expect(report["ping"]?.hasPrefix("ok") == true, "\(report)")
            #expect(report["tcp"]?.hasPrefix("ok bytes=4194304") == true, "\(report)")
            #expect(report["vsock_out"] == "ok/ok bytes=1048576", "\(report)")
            #expect(report["vsock_in"] == "ok bytes=1048576", "\(report)")
            // MMDS V2 from inside the guest: ARP, TCP and HTTP answered by the VMM.
            #expect(report["mmds_no_token"] == "401", "\(report)")
            #expect(report["mmds_token"] == "200 len=64", "\(report)")
            #expect(report["mmds_string"] == "200:ami-kata", "\(report)")
            #expect(report["mmds_keys"] == "200:ami-id,local-ipv4", "\(report)")
            #expect(report["mmds_json"] == "200:{\"meta-data\":{\"ami-id\":\"ami-kata\",\"local-ipv4\":\"10.199.2.2\"}}", "\(report)")
            #expect(report["mmds_bad_token"] == "401", "\(report)")
            #expect(report["end"] == "1")
            #expect(tcpResult.contains("RESULT tcp-serve ok"), "\(tcpResult)")
            #expect(echoResult.contains("RESULT vsock-echo ok bytes=1048576"), "\(echoResult)")
            #expect(connectResult.contains("RESULT vsock-connect ok line=OK "), "\(connectResult)")
        }
    }
}
