import Foundation
import OCI
import Runtime
import TestSupport
import Testing
import LinuxSupport

/// The runtime never sets up networking in a namespace it cannot prove is the container's:
/// not its own, not the host's, not another container's (whose `/proc/<pid>/ns/net` is our
/// process shim's, in the host's namespace).
@Suite(.serialized) struct NamespaceGuardTests {
    @Test func identityNamesTheNamespaceAndRefusesOtherFiles() throws {
        let net = try NamespaceGuard.identity(of: "/proc/self/ns/net")
        #expect(net.inode > 0)
        #expect(try NamespaceGuard.identity(of: "/proc/\(getpid())/ns/net") == net)
        #expect(try NamespaceGuard.identity(of: "/proc/self/ns/ipc") != net)
        #expect(throws: RuntimeError.self) { try NamespaceGuard.identity(of: "/etc/hostname") }
        #expect(throws: SystemError.self) { try NamespaceGuard.identity(of: "/nonexistent/ns") }
        // A namespace bind-mounted by `ip netns add` (as CNI leaves one) is the same
        // namespace as its /proc link, and not the runtime's.
        let name = "ngid-\(UUID().uuidString.prefix(6).lowercased())"
        let added = try VethNamespace.ip(["netns", "add", name])
        try #require(added.status == 0, "ip netns add: \(added.stderr)")
        defer { _ = try? VethNamespace.ip(["netns", "del", name]) }
        let bound = try NamespaceGuard.identity(of: "/var/run/netns/\(name)")
        #expect(bound != net)
        try NamespaceGuard.check([Spec.Namespace(.init(type: "network", path: "/var/run/netns/\(name)"))], containers: [],
                                 setsUpNetworking: true)
    }

    @Test func theRuntimesOwnNetworkNamespaceIsRefusedAndItsVethsStayUntouched() throws {
        // A veth pair in this (the host's) namespace, as the pods' veths are on a node.
        let suffix = String(UUID().uuidString.prefix(6)).lowercased()
        let (one, two) = ("ngA\(suffix)", "ngB\(suffix)")
        let made = try VethNamespace.ip(["link", "add", one, "type", "veth", "peer", "name", two])
        try #require(made.status == 0, "ip link add: \(made.stderr)")
        defer { _ = try? VethNamespace.ip(["link", "del", one]) }
        _ = try VethNamespace.ip(["link", "set", one, "up"])
        _ = try VethNamespace.ip(["link", "set", two, "up"])
        let linksBefore = try VethNamespace.ip(["-o", "link", "show"]).stdout

        // The VM runtime's configuration (tcfilter networking); nothing boots: the guard
        // refuses before the rootfs image, the taps or the monitor.
        let harness = try RuntimeHarness(config: """
            [hypervisor.kata]
            kernel = "/nonexistent/vmlinux"
            """)
        for path in ["/proc/\(getpid())/ns/net", "/proc/self/ns/net"] {
            let bundle = try harness.makeBundle(["true"]) { spec in
                var linux = spec["linux"] as? [String: Any] ?? [:]
                var namespaces = (linux["namespaces"] as? [[String: Any]] ?? []).filter { $0["type"] as? String != "network" }
                namespaces.append(["type": "network", "path": path])
                linux["namespaces"] = namespaces
                spec["linux"] = linux
            }
            let id = "ng-\(suffix)"
            let result = try harness.run(["create", "--bundle", bundle, id])
            #expect(result.status != 0)
            #expect(result.stderr.contains("is the runtime's own"),
                    "\(path): \(result.stderr)")
            #expect(harness.leftovers(id).isEmpty)
        }
        let linksAfter = try VethNamespace.ip(["-o", "link", "show"]).stdout
        #expect(!linksAfter.contains("tap0_kata"), "a tap was made in the host's namespace: \(linksAfter)")
        #expect(linksAfter.split(separator: "\n").count == linksBefore.split(separator: "\n").count)
        for veth in [one, two] {
            let qdiscs = try Command.run("/usr/sbin/tc", ["qdisc", "show", "dev", veth, "ingress"], timeout: 20)
            #expect(qdiscs.status == 0 && qdiscs.stdout.isEmpty, "\(veth): \(qdiscs.stdout) \(qdiscs.stderr)")
        }
    }

    /// Another container's namespaces, named by its process as podman pods and CRI name
    /// the pause's: refused for containers in VMs of their own; IPC and UTS shared where one
    /// agent runs both; never the network (the runtime would plumb the host's).
    @Test func anotherContainersNamespacesAreSharedOnlyWhereOneAgentRunsBoth() throws {
        let pause = [(id: "pause", pids: [getpid()])]
        for type in ["ipc", "uts", "network"] {
            let name = type == "network" ? "net" : type
            let namespaces = [Spec.Namespace(.init(type: type, path: "/proc/\(getpid())/ns/\(name)"))]
            #expect { try NamespaceGuard.check(namespaces, containers: pause, setsUpNetworking: false) } throws: {
                "\($0)".contains("joining the \(type) namespace of container pause")
            }
        }
        let ipc = [Spec.Namespace(.init(type: "ipc", path: "/proc/\(getpid())/ns/ipc")), Spec.Namespace(.init(type: "uts", path: "/proc/\(getpid())/ns/uts"))]
        #expect(try NamespaceGuard.check(ipc, containers: pause, setsUpNetworking: false, sharesWithSandbox: true)
                == [.init(type: "ipc", container: "pause"), .init(type: "uts", container: "pause")])
        let net = [Spec.Namespace(.init(type: "network", path: "/proc/\(getpid())/ns/net"))]
        #expect { try NamespaceGuard.check(net, containers: pause, setsUpNetworking: false, sharesWithSandbox: true) } throws: {
            "\($0)".contains("joining the network namespace of container pause")
        }
        // A process that is not one of ours is no container: its namespace is judged as any path.
        #expect(try NamespaceGuard.check(ipc, containers: [(id: "other", pids: [1])], setsUpNetworking: false, sharesWithSandbox: true).isEmpty)
    }

    /// A pod through the host agent: the app container joins the pause's IPC and UTS
    /// namespaces by the pause's pid, as podman and CRI ask, and sees its hostname and its
    /// namespaces; once the pause has stopped, its namespaces are gone and the join is refused.
    @Test func aPodsAppContainerJoinsThePausesIpcAndUts() throws {
        let agent = try HostAgent()
        defer { agent.stop() }
        let harness = try RuntimeHarness(config: agent.configuration)
        let report = "busybox readlink /proc/self/ns/ipc /proc/self/ns/uts; hostname"
        let first = try harness.makeBundle(["sh", "-c", "\(report); exec sleep 60"]) { spec in spec["hostname"] = "pod-host" }
        try #require(try harness.run(["create", "--bundle", first, "pause"]).status == 0)
        defer { _ = try? harness.run(["delete", "--force", "pause"]) }
        try #require(try harness.run(["start", "pause"]).status == 0)
        let state = try JSONSerialization.jsonObject(with: Data(try harness.run(["state", "pause"]).stdout.utf8)) as? [String: Any]
        let pid = try #require(state?["pid"] as? Int)
        let pauseView = try harness.run(["exec", "pause", "sh", "-c", report])
        #expect(pauseView.status == 0, "\(pauseView.stderr)")

        func app(_ id: String) throws -> Command.Result {
            let bundle = try harness.makeBundle(["sh", "-c", report]) { spec in
                var linux = spec["linux"] as? [String: Any] ?? [:]
                var namespaces = (linux["namespaces"] as? [[String: Any]] ?? []).filter { !["ipc", "uts"].contains($0["type"] as? String) }
                namespaces += [["type": "ipc", "path": "/proc/\(pid)/ns/ipc"], ["type": "uts", "path": "/proc/\(pid)/ns/uts"]]
                linux["namespaces"] = namespaces
                spec["linux"] = linux
                spec["hostname"] = nil
            }
            return try harness.run(["run", "--bundle", bundle, id], timeout: 60)
        }
        let joined = try app("app")
        #expect(joined.status == 0, "\(joined.stderr)")
        #expect(joined.stdout == pauseView.stdout && joined.stdout.hasSuffix("pod-host\n"), "app: \(joined.stdout) pause: \(pauseView.stdout)")
        // Standalone containers get namespaces of their own.
        let alone = try harness.run(["run", "--bundle", try harness.makeBundle(["sh", "-c", report]), "alone"], timeout: 60)
        #expect(alone.status == 0 && !alone.stdout.isEmpty && alone.stdout.split(separator: "\n").first != pauseView.stdout.split(separator: "\n").first,
                "\(alone.stdout)")
        #expect(try harness.run(["kill", "pause", "KILL"]).status == 0)
        #expect(Poll.until { (try? harness.run(["state", "pause"]).stdout.contains("\"stopped\"")) == true })
        // A container without a UTS namespace of its own is in the agent's: nobody may
        // join that one (and set the agent's hostname).
        let shared = try harness.makeBundle(["sleep", "60"]) { spec in
            var linux = spec["linux"] as? [String: Any] ?? [:]
            linux["namespaces"] = [["type": "mount"], ["type": "pid"]]
            spec["linux"] = linux
            spec["hostname"] = nil
        }
        try #require(try harness.run(["run", "--detach", "--bundle", shared, "hostns"], timeout: 60).status == 0)
        defer { _ = try? harness.run(["delete", "--force", "hostns"]) }
        let hostnsState = try JSONSerialization.jsonObject(with: Data(try harness.run(["state", "hostns"]).stdout.utf8)) as? [String: Any]
        let hostnsPid = try #require(hostnsState?["pid"] as? Int)
        let intruder = try harness.makeBundle(["true"]) { spec in
            var linux = spec["linux"] as? [String: Any] ?? [:]
            var namespaces = (linux["namespaces"] as? [[String: Any]] ?? []).filter { $0["type"] as? String != "uts" }
            namespaces.append(["type": "uts", "path": "/proc/\(hostnsPid)/ns/uts"])
            linux["namespaces"] = namespaces
            spec["linux"] = linux
            spec["hostname"] = "taken-over"
        }
        let refusedJoin = try harness.run(["run", "--bundle", intruder, "intruder"], timeout: 60)
        #expect(refusedJoin.status != 0 && refusedJoin.stderr.contains("container hostns has no uts namespace of its own"), "\(refusedJoin.stderr)")
        #expect(harness.leftovers("intruder").isEmpty)

        let late = try app("late")
        #expect(late.status != 0 && late.stderr.contains("/proc/\(pid)/ns/"), "\(late.stdout) \(late.stderr)")
        #expect(harness.leftovers("late").isEmpty)
    }

}
