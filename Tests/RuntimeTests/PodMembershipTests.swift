import Foundation
import Runtime
import TestSupport
import Testing

/// A pod's containers name their sandbox through CRI's annotations; a container whose
/// sandbox is missing or has stopped is refused, naming it, and leaves nothing.
@Suite(.serialized) struct PodMembershipTests {
    @Test func criAndCrioAnnotationsNameTheSandbox() {
        #expect(PodMembership(annotations: nil, id: "a") == .standalone)
        #expect(PodMembership(annotations: ["io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": "p"], id: "p") == .sandbox)
        #expect(PodMembership(annotations: ["io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "p"], id: "a")
                == .member(of: "p", annotation: "io.kubernetes.cri.sandbox-id"))
        #expect(PodMembership(annotations: ["io.kubernetes.cri-o.ContainerType": "container", "io.kubernetes.cri-o.SandboxID": "p"], id: "a")
                == .member(of: "p", annotation: "io.kubernetes.cri-o.SandboxID"))
        #expect(PodMembership(annotations: ["io.kubernetes.cri.container-type": "container"], id: "a") == .standalone)
        #expect(PodMembership(annotations: ["io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "a"], id: "a") == .standalone)
    }

    func member(_ harness: RuntimeHarness, of sandbox: String) throws -> String {
        try harness.makeBundle(["true"]) { spec in
            spec["annotations"] = ["io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": sandbox]
        }
    }

    @Test func aMemberNeedsItsSandboxRunningUnderThisRoot() throws {
        // With VMs of their own (nothing boots: the check comes first).
        let vms = try RuntimeHarness(config: "[hypervisor.kata]\nkernel = \"/nonexistent/vmlinux\"\n")
        let missing = try vms.run(["create", "--bundle", try member(vms, of: "nosuch"), "app"])
        #expect(missing.status != 0 && missing.stderr.contains("belongs to sandbox nosuch (io.kubernetes.cri.sandbox-id), which does not exist under --root \(vms.root)"),
                "\(missing.stderr)")
        #expect(vms.leftovers("app").isEmpty)

        // Through the host agent, a running sandbox takes members; a stopped one does not.
        let agent = try HostAgent()
        defer { agent.stop() }
        let harness = try RuntimeHarness(config: agent.configuration)
        let pause = try harness.makeBundle(["sleep", "60"]) { spec in
            spec["annotations"] = ["io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": "pod1"]
        }
        try #require(try harness.run(["run", "--detach", "--bundle", pause, "pod1"], timeout: 60).status == 0)
        defer { _ = try? harness.run(["delete", "--force", "pod1"]) }
        let app = try harness.run(["run", "--bundle", try member(harness, of: "pod1"), "app1"], timeout: 60)
        #expect(app.status == 0, "\(app.stderr)")
        #expect(try harness.run(["kill", "pod1", "KILL"]).status == 0)
        #expect(Poll.until { (try? harness.run(["state", "pod1"]).stdout.contains("\"stopped\"")) == true })
        let late = try harness.run(["create", "--bundle", try member(harness, of: "pod1"), "app2"])
        #expect(late.status != 0 && late.stderr.contains("belongs to sandbox pod1 (io.kubernetes.cri.sandbox-id), which has stopped"), "\(late.stderr)")
        #expect(harness.leftovers("app2").isEmpty)
    }
}
