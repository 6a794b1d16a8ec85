import Foundation
import AgentProtocol
import OCI
import Testing
@testable import AgentCore

/// The container plan resolved on the host, against a scratch rootfs: no VM, no mount.
@Suite struct ContainerPlanTests {
    let rootfs: String

    init() throws {
        rootfs = FileManager.default.temporaryDirectory.appendingPathComponent("plan-\(UUID().uuidString)").path
        for directory in ["etc", "proc", "data", "dev"] {
            try FileManager.default.createDirectory(atPath: rootfs + "/" + directory, withIntermediateDirectories: true)
        }
        // Symlinks that try to leave the rootfs, absolutely and relatively.
        try FileManager.default.createSymbolicLink(atPath: rootfs + "/escape", withDestinationPath: "/etc")
        try FileManager.default.createSymbolicLink(atPath: rootfs + "/up", withDestinationPath: "../../../../..")
    }

    func spec(mounts: [Spec.Mount] = [], namespaces: [String] = ["mount", "pid", "uts"], hostname: String? = nil,
              process: Spec.Process = Spec.Process(.init(args: ["sh"]))) -> Spec {
        var linux = Spec.Linux(.init())
        linux.namespaces = namespaces.map { Spec.Namespace(.init(type: $0)) }
        return Spec(.init(process: process, root: Spec.Root(.init(path: rootfs)), hostname: hostname, mounts: mounts, linux: linux))
    }

    func refusal(_ spec: Spec) -> String {
        do {
            _ = try ContainerPlan(spec: spec, rootfsBase: "/")
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    @Test func symlinksCannotSendAMountOutOfTheRootfs() throws {
        #expect(try ContainerPlan.secureJoin(rootfs, "/escape/passwd") == rootfs + "/etc/passwd")
        #expect(try ContainerPlan.secureJoin(rootfs, "/up/etc") == rootfs + "/etc")
        #expect(try ContainerPlan.secureJoin(rootfs, "/../../etc/../data/./x") == rootfs + "/data/x")
        #expect(try ContainerPlan.secureJoin(rootfs, "/") == rootfs)
        try FileManager.default.createSymbolicLink(atPath: rootfs + "/loop", withDestinationPath: "/loop")
        #expect(throws: AgentError.self) { try ContainerPlan.secureJoin(rootfs, "/loop/x") }
    }

    @Test func namespacesBecomeCloneFlags() throws {
        // In a VM the guest's network is the container's: no network namespace is made.
        let plan = try ContainerPlan(spec: spec(namespaces: ["mount", "pid", "uts", "ipc", "cgroup", "network"], hostname: "box"),
                                     rootfsBase: "/", ownsNetwork: true)
        let expected = ContainerPlan.CloneFlag.newNS | ContainerPlan.CloneFlag.newPID | ContainerPlan.CloneFlag.newUTS
            | ContainerPlan.CloneFlag.newIPC | ContainerPlan.CloneFlag.newCgroup
        #expect(plan.cloneFlags == expected)
        // Beside a host test the container gets one of its own, as with runc.
        let host = try ContainerPlan(spec: spec(namespaces: ["mount", "pid", "uts", "ipc", "cgroup", "network"], hostname: "box"),
                                     rootfsBase: "/")
        #expect(host.cloneFlags == expected | ContainerPlan.CloneFlag.newNet)
        #expect(plan.hostname == "box")
        #expect(refusal(spec(namespaces: ["mount", "user"])).contains("user namespaces are not supported"))
        #expect(refusal(spec(namespaces: ["mount", "net"])).contains("unknown namespace type net"))
        #expect(refusal(spec(namespaces: ["mount"], hostname: "box")).contains("needs a new uts namespace"))
        #expect(refusal(spec(hostname: String(repeating: "h", count: 65))).contains("longer than 64"))
        var joining = spec()
        joining.linux?.namespaces = [Spec.Namespace(.init(type: "pid", path: "/proc/1/ns/pid"))]
        #expect(refusal(joining).contains("joining a pid namespace by path"))
    }

    @Test func mountsGetFlagsTargetsAndTheDefaultDevices() throws {
        let mounts = [
            Spec.Mount(.init(destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec"])),
            Spec.Mount(.init(destination: "/escape/hosts", type: "bind", source: "/etc/hostname", options: ["rbind", "ro"])),
            Spec.Mount(.init(destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["ro"])),
            Spec.Mount(.init(destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["mode=755", "size=65536k"])),
        ]
        let plan = try ContainerPlan(spec: spec(mounts: mounts), rootfsBase: "/")
        let proc = plan.mounts[0]
        #expect(proc.target == rootfs + "/proc" && proc.fstype == "proc" && proc.flags == UInt(MS_NOSUID | MS_NOEXEC))
        // A bind ignores the other flags: read-only takes a remount, and the target stays inside.
        let bind = plan.mounts[1]
        #expect(bind.target == rootfs + "/etc/hosts")
        #expect(bind.fstype == nil && bind.flags == UInt(MS_BIND | MS_REC) && bind.remountFlags == UInt(MS_RDONLY))
        #expect(bind.isFile)
        #expect(plan.mounts[2].fstype == "cgroup2" && plan.mounts[2].source == "cgroup2")
        #expect(plan.mounts[3].data == "mode=755,size=65536k")
        let devices = plan.mounts.dropFirst(4).map(\.target)
        #expect(devices == ContainerPlan.defaultDevices.map { rootfs + "/dev/" + $0 })
        #expect(plan.symlinks.contains { $0.target == "pts/ptmx" && $0.path == rootfs + "/dev/ptmx" })
    }

    @Test func badMountsAndPathsAreRefused() {
        #expect(refusal(spec(mounts: [Spec.Mount(.init(destination: "proc", type: "proc", source: "proc", options: nil))]))
            .contains("must be absolute"))
        #expect(refusal(spec(mounts: [Spec.Mount(.init(destination: "/x", type: "bind", source: "relative", options: nil))]))
            .contains("needs an absolute source"))
        #expect(refusal(spec(mounts: [Spec.Mount(.init(destination: "/x", type: nil, source: "/no/such/source", options: ["bind"]))]))
            .contains("does not exist"))
        #expect(refusal(spec(mounts: [Spec.Mount(.init(destination: "/x", type: "tmpfs", source: "tmp\u{0}fs", options: nil))]))
            .contains("NUL"))
        var masked = spec()
        masked.linux?.maskedPaths = ["proc/kcore"]
        #expect(refusal(masked).contains("must be absolute"))
        var noRoot = spec()
        noRoot.root = nil
        #expect(refusal(noRoot).contains("no root"))
        var missingRoot = spec()
        missingRoot.root?.path = rootfs + "/missing"
        #expect(refusal(missingRoot).contains("is not a directory"))
    }
}

extension ContainerPlanTests {
    /// A pod's app container names the pause's IPC and UTS namespaces by reference; any
    /// other namespace path means nothing in the guest and is refused.
    @Test func sandboxNamespacesAreJoinedByReferenceOnly() throws {
        func with(_ namespaces: [(String, String?)], hostname: String? = nil) -> Spec {
            var spec = spec(hostname: hostname)
            spec.linux?.namespaces = namespaces.map { Spec.Namespace(.init(type: $0.0, path: $0.1)) }
            return spec
        }
        let ipc = ContainerNamespaceReference.path(container: "pause", type: "ipc")
        let uts = ContainerNamespaceReference.path(container: "pause", type: "uts")
        #expect(ipc == "/run/kata-containers/containers/pause/ns/ipc")
        #expect(ContainerNamespaceReference.parse(ipc)! == ("pause", "ipc"))
        for bad in ["/run/kata-containers/containers/pause/ns/", "/run/kata-containers/containers//ns/ipc",
                    "/run/kata-containers/containers/pause/x/ipc", "/run/kata-containers/containers/a/b/ns/ipc", "/proc/1/ns/ipc"] {
            #expect(ContainerNamespaceReference.parse(bad) == nil, "\(bad)")
        }
        let plan = try ContainerPlan(spec: with([("mount", nil), ("pid", nil), ("ipc", ipc), ("uts", uts)], hostname: "pod"), rootfsBase: "/")
        #expect(plan.joins.map(\.type) == ["ipc", "uts"] && plan.joins.allSatisfy { $0.container == "pause" })
        #expect(plan.cloneFlags & ContainerPlan.CloneFlag.newIPC == 0 && plan.cloneFlags & ContainerPlan.CloneFlag.newUTS == 0)
        #expect(plan.cloneFlags & ContainerPlan.CloneFlag.newPID != 0)
        #expect(plan.hostname == "pod")  // a joined UTS namespace may be named, as runc allows
        #expect(refusal(with([("ipc", "/proc/1/ns/ipc")])).contains("joining a ipc namespace by path is not supported"))
        #expect(refusal(with([("ipc", uts)])).contains("joining a ipc namespace by path is not supported"))
        #expect(refusal(with([("pid", ContainerNamespaceReference.path(container: "pause", type: "pid"))])).contains("not supported"))
        #expect(refusal(with([("ipc", ContainerNamespaceReference.path(container: "..", type: "ipc"))])).contains("invalid container id"))
        #expect(refusal(with([("ipc", ipc)], hostname: "h")).contains("hostname needs a new uts namespace"))
    }
}

extension ContainerPlanTests {
    /// linux.devices become mknod plans by container path (made once the root is entered,
    /// where no symlink leads out); a bad entry is refused, naming it.
    @Test func devicesArePlannedInsideTheRootfs() throws {
        func with(_ devices: [Spec.Device]) -> Spec {
            var spec = spec()
            spec.linux?.devices = devices
            return spec
        }
        func device(_ type: String, _ path: String, _ major: Int64? = nil, _ minor: Int64? = nil, mode: UInt32? = nil) -> Spec.Device {
            var device = Spec.Device(.init(type: type, path: path))
            device.major = major
            device.minor = minor
            device.fileMode = mode
            return device
        }
        var null = device("c", "/dev/test1", 1, 3, mode: 0o620)
        null.uid = 7
        null.gid = 8
        let plan = try ContainerPlan(spec: with([null, device("p", "/dev/fifo"), device("b", "/escape/loop9", 7, 9)]), rootfsBase: "/")
        #expect(plan.devices == [
            DeviceNode(target: "/dev/test1", mode: UInt32(S_IFCHR) | 0o620, major: 1, minor: 3, uid: 7, gid: 8),
            DeviceNode(target: "/dev/fifo", mode: UInt32(S_IFIFO) | 0o666, major: 0, minor: 0, uid: 0, gid: 0),
            DeviceNode(target: "/escape/loop9", mode: UInt32(S_IFBLK) | 0o666, major: 7, minor: 9, uid: 0, gid: 0),
        ])
        #expect(refusal(with([device("c", "/dev/../etc/x", 1, 1)])).contains("must not contain '..'"))
        #expect(refusal(with([device("x", "/dev/a", 1, 1)])).contains("type 'x' is not c, u, b or p"))
        #expect(refusal(with([device("c", "/dev/a")])).contains("major and minor are required"))
        #expect(refusal(with([device("c", "/dev/a", 4096, 0)])).contains("major and minor are required"))
        #expect(refusal(with([device("c", "dev/a", 1, 1)])).contains("must be absolute"))
        #expect(refusal(with([device("c", "/dev/a", 1, 1, mode: 0o17777)])).contains("bits past 07777"))
        #expect(refusal(with(Array(repeating: device("p", "/dev/f"), count: 257))).contains("257 devices: at most 256"))
    }

    /// Only sysctls of the container's own namespaces, as runc; the network's only where
    /// the agent is the VM's init.
    @Test func sysctlsBelongToTheContainersNamespaces() throws {
        func with(_ sysctl: [String: String], namespaces: [String] = ["mount", "pid", "ipc", "uts"]) -> Spec {
            var spec = spec(namespaces: namespaces)
            spec.linux?.sysctl = sysctl
            return spec
        }
        let plan = try ContainerPlan(spec: with(["kernel.shmmax": "4096", "fs.mqueue.msg_max": "12", "kernel.domainname": "pod.local"]),
                                     rootfsBase: "/")
        #expect(plan.sysctls == [Sysctl(path: "/proc/sys/fs/mqueue/msg_max", value: "12"), Sysctl(path: "/proc/sys/kernel/domainname", value: "pod.local"),
                                 Sysctl(path: "/proc/sys/kernel/shmmax", value: "4096")])
        let net = try ContainerPlan(spec: with(["net.ipv4.ip_forward": "1"]), rootfsBase: "/", ownsNetwork: true)
        #expect(net.sysctls == [Sysctl(path: "/proc/sys/net/ipv4/ip_forward", value: "1")])
        do {
            _ = try ContainerPlan(spec: with(["net.ipv4.ip_forward": "1"]), rootfsBase: "/")
            Issue.record("a network sysctl was accepted beside the host")
        } catch {
            #expect("\(error)".contains("need the agent of a VM"))
        }
        // Beside a host test, a network namespace of the container's own takes them too.
        let own = try ContainerPlan(spec: with(["net.ipv4.ip_forward": "1"], namespaces: ["mount", "network"]), rootfsBase: "/")
        #expect(own.sysctls.count == 1 && own.cloneFlags & ContainerPlan.CloneFlag.newNet != 0)
        #expect(try ContainerPlan(spec: with([:], namespaces: ["mount", "network"]), rootfsBase: "/", ownsNetwork: true).cloneFlags
                & ContainerPlan.CloneFlag.newNet == 0)
        #expect(refusal(with(["kernel.shmmax": "1"], namespaces: ["mount"])).contains("needs the container's own ipc namespace"))
        #expect(refusal(with(["kernel.hostname": "x"], namespaces: ["mount"])).contains("needs the container's own uts namespace"))
        #expect(refusal(with(["vm.swappiness": "1"])).contains("is not in a container's namespaces"))
        #expect(refusal(with(["kernel..shmmax": "1"])).contains("is not a sysctl name"))
        #expect(refusal(with(["kernel/../../etc": "1"])).contains("is not a sysctl name"))
        #expect(refusal(with(["kernel.shmmax": "1\u{0}2"])).contains("a bad value"))
    }
}
