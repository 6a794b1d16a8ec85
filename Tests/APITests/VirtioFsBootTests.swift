import Foundation
import Glibc
import TestSupport
import Testing

/// kata-vmm with a virtio-fs device served by Debian's virtiofsd, through `--fs` and the
/// API: the VM boots with its RAM in a shared memfd, a missing daemon is a clean error
/// that leaves the VM configurable, and a daemon that dies does not take the VM with it.
@Suite struct VirtioFsBootTests {
    /// Whether the process maps guest RAM from a memfd, MAP_SHARED ("s" in the flags).
    static func mapsSharedGuestRam(_ pid: Int32) -> Bool {
        let maps = (try? String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)) ?? ""
        return maps.split(separator: "\n").contains { $0.contains("/memfd:guest-ram") && $0.split(separator: " ")[1].hasSuffix("s") }
    }

    @Test func theApiBootsWithAVirtioFsDeviceAndTheVmOutlivesItsDaemon() throws {
        let probe = try Fixtures.probeGuest().path
        let daemon = try Virtiofsd()
        let vmm = try VmmProcess()
        let api = try UnixHTTPClient(path: vmm.socket)
        #expect(try api.request("PUT", "/boot-source", body: #"{"kernel_image_path":"\#(probe)","boot_args":"probe.mode=count"}"#).status == 204)

        // The daemon is not there yet: InstanceStart says so, and the VM stays configurable.
        let absent = vmm.path("absent.sock")
        #expect(try api.request("PUT", "/fs/shared", body: #"{"fs_id":"shared","tag":"kataShared","socket":"\#(absent)"}"#).status == 204)
        let failed = try api.request("PUT", "/actions", body: #"{"action_type":"InstanceStart"}"#)
        #expect(failed.status == 400, "\(failed)")
        #expect(failed.faultMessage?.contains("connect \(absent)") == true, "\(failed)")
        #expect(try api.request("GET", "/").json?["state"] as? String == "Not started")

        // The same id replaces the device; now it boots.
        #expect(try api.request("PUT", "/fs/shared", body: #"{"fs_id":"shared","tag":"kataShared","socket":"\#(daemon.socketPath)","num_queues":1,"queue_size":256}"#).status == 204)
        let fs = try api.request("GET", "/vm/config").json?["fs"] as? [[String: Any]]
        #expect(fs?.count == 1 && fs?.first?["socket"] as? String == daemon.socketPath && fs?.first?["queue_size"] as? Int == 256)
        #expect(try api.request("PUT", "/actions", body: #"{"action_type":"InstanceStart"}"#).status == 204)
        #expect(vmm.wait { vmm.lastTick >= 1 }, "\(vmm.log)")
        #expect(Self.mapsSharedGuestRam(vmm.process.processIdentifier), "guest RAM is not a shared memfd mapping")

        daemon.kill()
        let tick = vmm.lastTick
        #expect(vmm.wait { vmm.lastTick >= tick + 2 }, "the guest stopped when its virtio-fs daemon died: \(vmm.log)")
        #expect(vmm.process.isRunning)
        #expect(try api.request("GET", "/").json?["state"] as? String == "Running")
    }

    @Test func theCommandLineAttachesVirtioFs() throws {
        let probe = try Fixtures.probeGuest().path
        // virtiofsd 7.2 serves one request queue; a device that wants more is refused by name.
        // (A daemon serves one connection and exits when it ends: each VM gets its own.)
        let refusing = try Virtiofsd()
        let tooMany = try Command.run(Fixtures.kataVmm.path, ["--kernel", probe, "--fs", "tag=kataShared,socket=\(refusing.socketPath),queues=2,id=shared"], timeout: 30)
        #expect(tooMany.status == 1 && tooMany.stderr.contains("virtio-fs 'shared' (tag 'kataShared'): vhost-user: the backend does not support 3 queues (it serves 2)"),
                "\(tooMany.stderr)")
        let daemon = try Virtiofsd()
        let vmm = try VmmProcess(extra: ["--kernel", probe, "--cmdline", "probe.mode=count",
                                         "--fs", "tag=kataShared,socket=\(daemon.socketPath),queues=1,queue_size=128"], api: false)
        #expect(vmm.wait { vmm.lastTick >= 1 }, "\(vmm.log)")
        #expect(Self.mapsSharedGuestRam(vmm.process.processIdentifier))
        _ = vmm.stop()

        // Without virtio-fs, guest RAM stays private anonymous memory.
        let plain = try VmmProcess(extra: ["--kernel", probe, "--cmdline", "probe.mode=count"], api: false)
        #expect(plain.wait { plain.lastTick >= 1 }, "\(plain.log)")
        #expect(!Self.mapsSharedGuestRam(plain.process.processIdentifier))
        _ = plain.stop()

        let missing = Fixtures.scratch.appendingPathComponent("no-virtiofsd-\(UUID().uuidString.prefix(8)).sock").path
        let refused = try Command.run(Fixtures.kataVmm.path, ["--kernel", probe, "--fs", "tag=t,socket=\(missing)"], timeout: 30)
        #expect(refused.status == 1 && refused.stderr.contains("connect \(missing)"), "\(refused.stderr)")
        let bad = try Command.run(Fixtures.kataVmm.path, ["--kernel", probe, "--fs", "tag=t"], timeout: 30)
        #expect(bad.status == 64 && bad.stderr.contains("socket= is required"), "\(bad.stderr)")
    }
}
