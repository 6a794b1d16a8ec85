import Foundation
import TestSupport
import Testing

extension LinuxGuestTests {
    /// Real Linux drivers against virtio-net and virtio-vsock in one boot: the guest's eth0,
    /// on a tap in a network namespace the test makes, pings the host side and pulls 4 MiB
    /// over TCP; a guest AF_VSOCK connection reaches `<uds>_5001` (1 MiB there and back) and a
    /// host `CONNECT 5002` reaches a guest listener (1 MiB), contents checked on both sides.
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

            let cmdline = "console=ttyS0 reboot=k panic=-1 pci=off \(Fixtures.sharedKernelCmdline) kata.ip=10.199.2.2 kata.peer=10.199.2.1 kata.tcp=5000:4194304 kata.vsock_out=5001:1048576 kata.vsock_in=5002:1048576"
            let vm = try Command.run("/usr/sbin/ip", ["netns", "exec", ns, Fixtures.kataVmm.path,
                                                      "--kernel", kernel.path, "--initrd", initramfs.path, "--cpus", "2", "--memory", "256",
                                                      "--cmdline", cmdline, "--net", "tap=\(tap),mac=\(Self.mac)",
                                                      "--vsock", "cid=7,uds=\(uds)"], timeout: 420)
            let tcpResult = tcp.finish(timeout: 5), echoResult = echo.finish(timeout: 5), connectResult = connect.finish(timeout: 5)
            let report = GuestReport(vm.stdout, prefix: "KATA-NET").latest
            #expect(vm.status == 0, "exit \(vm.status)\n\(vm.stderr)\n\(vm.stdout.suffix(3000))")
            #expect(report["eth0"] == "up")
            #expect(report["eth0_mac"] == Self.mac)
            #expect(report["ping"]?.hasPrefix("ok") == true, "\(report)")
            #expect(report["tcp"]?.hasPrefix("ok bytes=4194304") == true, "\(report)")
            #expect(report["vsock_out"] == "ok/ok bytes=1048576", "\(report)")
            #expect(report["vsock_in"] == "ok bytes=1048576", "\(report)")
            #expect(report["end"] == "1")
            #expect(tcpResult.contains("RESULT tcp-serve ok"), "\(tcpResult)")
            #expect(echoResult.contains("RESULT vsock-echo ok bytes=1048576"), "\(echoResult)")
            #expect(connectResult.contains("RESULT vsock-connect ok line=OK "), "\(connectResult)")
        }
    }
}
