import Foundation
import OCI
import Testing

@Suite struct OCIObjectTests {
    /// A spec with members this model does not declare at several depths: the top level,
    /// in `process`, in a mount (an array element), in `linux` and in `linux.resources`.
    static let extended = #"""
    {"ociVersion":"1.2.0","vm":{"hypervisor":{"path":"/usr/bin/qemu","parameters":["-x"]}},
     "process":{"user":{"uid":1000,"gid":1000,"umask":18},"args":["sh"],"cwd":"/",
                "ioPriority":{"class":"IOPRIO_CLASS_RT","priority":7},"scheduler":{"policy":"SCHED_OTHER","nice":-5}},
     "root":{"path":"rootfs"},
     "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
               {"destination":"/data","type":"bind","source":"/srv","options":["rbind"],"uidMappings":[{"containerID":0,"hostID":1,"size":2}]}],
     "linux":{"seccomp":{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]},
              "resources":{"memory":{"limit":1048576,"disableOOMKiller":true},
                           "devices":[{"allow":false,"access":"rwm"}],"unified":{"memory.high":"max"}},
              "intelRdt":null,"personality":{"domain":"LINUX"}},
     "annotations":{"io.kubernetes.cri.sandbox-id":"abc"},
     "x-limits":{"big":18446744073709551615,"small":-9223372036854775808,"fraction":1.5,"flag":false,"none":null}}
    """#

    func tree(_ data: Data) throws -> JSONValue { try JSONDecoder().decode(JSONValue.self, from: data) }

    @Test func decodeThenEncodeKeepsEveryMember() throws {
        let original = Data(Self.extended.utf8)
        let spec = try Spec.decode(original)
        #expect(spec.process?.user.uid == 1000)
        #expect(spec.linux?.resources?.memory?.limit == 1_048_576)
        #expect(spec.unknownMembers["vm"] != nil)
        #expect(spec.process?.unknownMembers["ioPriority"] != nil)
        #expect(spec.mounts?[1].unknownMembers["uidMappings"] != nil)
        #expect(spec.linux?.resources?.memory?.unknownMembers["disableOOMKiller"] == .bool(true))
        #expect(try tree(spec.encoded()) == tree(original))
    }

    @Test func integersOutsideDoubleSurviveExactly() throws {
        let spec = try Spec.decode(Data(Self.extended.utf8))
        guard case .object(let limits)? = spec.unknownMembers["x-limits"] else {
            Issue.record("x-limits not kept: \(String(describing: spec.unknownMembers["x-limits"]))")
            return
        }
        #expect(limits["big"] == .unsignedInteger(UInt64.max))
        #expect(limits["small"] == .integer(Int64.min))
        #expect(limits["fraction"] == .number(1.5))
        #expect(limits["none"] == .null)
        let text = String(decoding: try spec.encoded(), as: UTF8.self)
        #expect(text.contains("18446744073709551615"), "\(text)")
        #expect(text.contains("-9223372036854775808"), "\(text)")
    }

    @Test func changingAKnownMemberKeepsTheUnknownOnes() throws {
        var spec = try Spec.decode(Data(Self.extended.utf8))
        spec.process?.args = ["true"]
        spec.mounts?.removeFirst()
        spec.hooks = nil
        let again = try Spec.decode(try spec.encoded())
        #expect(again.process?.args == ["true"])
        #expect(again.process?.unknownMembers["ioPriority"] == spec.process?.unknownMembers["ioPriority"])
        #expect(again.mounts?.count == 1)
        #expect(again.mounts?[0].unknownMembers["uidMappings"] != nil, "the kept mount's own members moved with it")
        #expect(again == spec)
    }

    @Test func anUnknownMemberNeverShadowsAKnownOne() throws {
        var spec = Spec(.init(root: Spec.Root(.init(path: "/r"))))
        spec.hostname = "typed"
        spec.unknownMembers["hostname"] = .string("raw")
        let text = String(decoding: try spec.encoded(), as: UTF8.self)
        #expect(text.contains(#""hostname":"typed""#), "\(text)")
        #expect(!text.contains("raw"), "\(text)")
    }

    @Test func errorsNameTheMember() {
        func problem(_ json: String) -> String {
            do {
                _ = try Spec.decode(Data(json.utf8))
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(problem(#"{"ociVersion":"1.0.2","process":{"user":{"uid":"root","gid":0},"args":["sh"],"cwd":"/"}}"#)
                == "process.user.uid: expected a number")
        #expect(problem(#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["sh"]}}"#) == "process.cwd: missing")
        #expect(problem(#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":"sh","cwd":"/"}}"#)
                == "process.args: expected an array")
        #expect(problem(#"{"ociVersion":"1.0.2","mounts":[{"destination":null}]}"#).hasPrefix("mounts[0].destination: null where"))
        #expect(problem(#"{"ociVersion":"1.0.2","process":"sh"}"#) == "process: expected an object")
        #expect(problem("{").hasPrefix("(top level): not valid JSON"))
        #expect(problem("[]") == "(top level): expected an object")
    }

    @Test func standaloneObjectsDecodeAlone() throws {
        let resources = try Spec.Resources.decode(Data(#"{"memory":{"limit":-1},"pids":{"limit":64},"hugepageLimits":[]}"#.utf8))
        #expect(resources.memory?.limit == -1)
        #expect(resources.pids?.limit == 64)
        #expect(resources.unknownMembers["hugepageLimits"] == .array([]))
        let process = try Spec.Process.decode(Data(#"{"user":{"uid":0,"gid":0},"args":["ls"],"cwd":"/tmp"}"#.utf8))
        #expect(process.cwd == "/tmp")
    }
}
