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

    @Test func joiningAnotherContainersNamespacesIsRefusedUntilPodsLand() throws {
        let agent = try HostAgent()
        defer { agent.stop() }
        let harness = try RuntimeHarness(config: agent.configuration)
        let first = try harness.makeBundle(["sleep", "60"])
        let created = try harness.run(["create", "--bundle", first, "pause"])
        try #require(created.status == 0, "\(created.stderr)")
        defer { _ = try? harness.run(["delete", "--force", "pause"]) }
        let state = try JSONSerialization.jsonObject(with: Data(try harness.run(["state", "pause"]).stdout.utf8)) as? [String: Any]
        let pid = try #require(state?["pid"] as? Int)

        for type in ["network", "ipc", "uts"] {
            let second = try harness.makeBundle(["true"]) { spec in
                var linux = spec["linux"] as? [String: Any] ?? [:]
                var namespaces = (linux["namespaces"] as? [[String: Any]] ?? []).filter { $0["type"] as? String != type }
                namespaces.append(["type": type, "path": "/proc/\(pid)/ns/\(type == "network" ? "net" : type)"])
                linux["namespaces"] = namespaces
                spec["linux"] = linux
            }
            let result = try harness.run(["create", "--bundle", second, "app"])
            #expect(result.status != 0)
            #expect(result.stderr.contains("namespace of container pause"), "\(type): \(result.stderr)")
            #expect(harness.leftovers("app").isEmpty)
        }
    }
}
