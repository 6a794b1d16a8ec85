import Foundation
import TestSupport
import Testing

/// OCI spec features the agent applies inside the container, through the host agent:
/// `linux.devices` made with mknod (runtime-tools' linux_devices) and `linux.sysctl`
/// written in the container's own namespaces (linux_sysctl), the host's left alone.
@Suite(.serialized) struct HostAgentSpecTests {
    @Test func devicesAndSysctlsReachTheContainerOnly() throws {
        let agent = try HostAgent()
        defer { agent.stop() }
        let harness = try RuntimeHarness(config: agent.configuration)
        let hostShmmax = try String(contentsOfFile: "/proc/sys/kernel/shmmax", encoding: .utf8)
        let hostDomain = try String(contentsOfFile: "/proc/sys/kernel/domainname", encoding: .utf8)
        let script = "busybox stat -c '%n %F %t:%T %a %u:%g' /dev/test1 /dev/test2 /dev/sub/test3; "
            + "busybox stat -c '%n %F' /etc/passwd; cat /proc/sys/kernel/shmmax /proc/sys/kernel/domainname"
        let bundle = try harness.makeBundle(["sh", "-c", script]) { spec in
            var linux = spec["linux"] as? [String: Any] ?? [:]
            linux["devices"] = [
                ["type": "c", "path": "/dev/test1", "major": 1, "minor": 3, "fileMode": 0o620, "uid": 5, "gid": 6],
                ["type": "p", "path": "/dev/test2"],
                ["type": "b", "path": "/dev/sub/test3", "major": 7, "minor": 42, "fileMode": 0o600],
                // A file of the image at a device's path is kept, as runc keeps it.
                ["type": "c", "path": "/etc/passwd", "major": 1, "minor": 3],
            ]
            linux["sysctl"] = ["kernel.shmmax": "123456789", "kernel.domainname": "pod.example"]
            spec["linux"] = linux
        }
        let run = try harness.run(["run", "--bundle", bundle, "spec1"], timeout: 60)
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("/dev/test1 character special file 1:3 620 5:6"), "\(run.stdout)")
        #expect(lines.contains("/dev/test2 fifo 0:0 666 0:0"), "\(run.stdout)")
        #expect(lines.contains("/dev/sub/test3 block special file 7:2a 600 0:0"), "\(run.stdout)")
        #expect(lines.contains("/etc/passwd regular file"), "\(run.stdout)")
        #expect(lines.suffix(2) == ["123456789", "pod.example"], "\(run.stdout)")
        #expect(try String(contentsOfFile: "/proc/sys/kernel/shmmax", encoding: .utf8) == hostShmmax)
        #expect(try String(contentsOfFile: "/proc/sys/kernel/domainname", encoding: .utf8) == hostDomain)

        // A sysctl outside the container's namespaces is refused before anything runs.
        let global = try harness.makeBundle(["true"]) { spec in
            var linux = spec["linux"] as? [String: Any] ?? [:]
            linux["sysctl"] = ["vm.swappiness": "1"]
            spec["linux"] = linux
        }
        let refused = try harness.run(["run", "--bundle", global, "spec2"], timeout: 60)
        #expect(refused.status != 0 && refused.stderr.contains("sysctl vm.swappiness is not in a container's namespaces"), "\(refused.stderr)")
        #expect(harness.leftovers("spec2").isEmpty)
    }
}
