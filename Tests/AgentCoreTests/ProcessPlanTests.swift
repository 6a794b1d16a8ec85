import OCI
import Testing
@testable import AgentCore

@Suite struct ProcessPlanTests {
    func process(_ edit: (inout Spec.Process) -> Void) -> Spec.Process {
        var process = Spec.Process(.init(args: ["sh", "-c", "true"], env: ["A=1", "PATH=/opt/bin:/bin"], cwd: "/work"))
        edit(&process)
        return process
    }

    func refusal(_ edit: (inout Spec.Process) -> Void) -> String {
        do {
            _ = try ProcessPlan(process(edit))
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    @Test func resolvesTheProcess() throws {
        let plan = try ProcessPlan(process {
            $0.user = Spec.User(.init(uid: 1000, gid: 100, additionalGids: [5, 6]))
            $0.rlimits = [Spec.Rlimit(.init(type: "RLIMIT_NOFILE", hard: 4096, soft: 1024))]
            $0.capabilities = Spec.Capabilities(.init(bounding: ["CAP_KILL", "CAP_CHOWN"], effective: ["CAP_KILL"], inheritable: nil,
                                                      permitted: ["CAP_KILL"], ambient: nil))
            $0.noNewPrivileges = true
            $0.oomScoreAdj = -500
            $0.terminal = true
            $0.consoleSize = Spec.ConsoleSize(.init(height: 24, width: 80))
        })
        #expect(plan.argv == ["sh", "-c", "true"])
        #expect(plan.searchPath == "/opt/bin:/bin")
        #expect(plan.cwd == "/work")
        #expect(plan.uid == 1000 && plan.gid == 100 && plan.groups == [5, 6])
        #expect(plan.rlimits.count == 1 && plan.rlimits[0].resource == 7 && plan.rlimits[0].soft == 1024 && plan.rlimits[0].hard == 4096)
        // CAP_CHOWN is 0, CAP_KILL is 5.
        #expect(plan.capabilities?.bounding == (1 << 0 | 1 << 5))
        #expect(plan.capabilities?.effective == 1 << 5 && plan.capabilities?.inheritable == 0)
        #expect(plan.noNewPrivileges && plan.oomScoreAdj == -500)
        #expect(plan.terminal && plan.consoleSize?.rows == 24 && plan.consoleSize?.columns == 80)
    }

    @Test func withoutAPathTheDefaultSearchPathApplies() throws {
        let plan = try ProcessPlan(process { $0.env = ["HOME=/root"] })
        #expect(plan.searchPath == ProcessPlan.defaultPath)
    }

    @Test func badProcessesAreRefused() {
        #expect(refusal { $0.args = [] }.contains("must name a program"))
        #expect(refusal { $0.args = [""] }.contains("must name a program"))
        #expect(refusal { $0.cwd = "work" }.contains("must be absolute"))
        #expect(refusal { $0.rlimits = [Spec.Rlimit(.init(type: "RLIMIT_BOGUS", hard: 1, soft: 1))] }.contains("unknown rlimit"))
        #expect(refusal { $0.rlimits = [Spec.Rlimit(.init(type: "RLIMIT_NOFILE", hard: 1, soft: 2))] }.contains("soft above hard"))
        #expect(refusal {
            $0.capabilities = Spec.Capabilities(.init(bounding: ["CAP_NOT_A_THING"], effective: nil, inheritable: nil, permitted: nil,
                                                      ambient: nil))
        } != "accepted")
        #expect(refusal { $0.oomScoreAdj = 1001 }.contains("out of range"))
        #expect(refusal { $0.env = ["A=\u{0}"] }.contains("NUL"))
        #expect(refusal { $0.user.additionalGids = Array(repeating: 1, count: 65537) }.contains("too many"))
    }
}
