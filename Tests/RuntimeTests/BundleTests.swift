import Foundation
import OCI
@testable import Runtime
import TestSupport
import Testing

@Suite struct BundleTests {
    func bundle(_ config: String?, rootfs: Bool = true) throws -> String {
        let dir = Fixtures.scratch.appendingPathComponent("bundle-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + (rootfs ? "/rootfs" : ""), withIntermediateDirectories: true)
        if let config { try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8) }
        return dir
    }

    func expectError(_ config: String?, _ fragment: String, rootfs: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let dir = try bundle(config, rootfs: rootfs)
        do {
            _ = try OCIBundle(path: dir)
            Issue.record("accepted", sourceLocation: sourceLocation)
        } catch {
            #expect("\(error)".contains(fragment), "\(error)", sourceLocation: sourceLocation)
        }
    }

    static let minimal = #"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"}}"#

    @Test func loadsTheDefaultSpecAndKeepsTheBytes() throws {
        let encoder = JSONEncoder()
        let data = try encoder.encode(DefaultSpec.make())
        let dir = try bundle(String(decoding: data, as: UTF8.self))
        let loaded = try OCIBundle(path: dir)
        #expect(loaded.spec == DefaultSpec.make())
        #expect(loaded.configData == data)
        #expect(loaded.rootfsPath == dir + "/rootfs")
        #expect(loaded.spec.process?.args == ["sh"])
    }

    @Test func extensionsAndUnknownFieldsAreIgnored() throws {
        let dir = try bundle(#"{"ociVersion":"1.1.0","process":{"user":{"uid":0,"gid":0},"args":["true"],"cwd":"/","ioPriority":{"class":"IOPRIO_CLASS_RT"}},"root":{"path":"rootfs"},"vm":{"hypervisor":{}},"linux":{"namespaces":[{"type":"network","path":"/var/run/netns/x"}],"resources":{"memory":{"limit":1048576}}}}"#)
        let loaded = try OCIBundle(path: dir)
        #expect(loaded.spec.networkNamespacePath == "/var/run/netns/x")
        #expect(loaded.spec.linux?.resources?.memory?.limit == 1_048_576)
    }

    @Test func errorsNameTheFileAndTheField() throws {
        try expectError(nil, "config.json: no such file")
        try expectError("{", "config.json: not valid JSON")
        try expectError(#"{"process":{}}"#, "ociVersion: missing")
        try expectError(#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":"sh","cwd":"/"},"root":{"path":"rootfs"}}"#,
                        "process.args: expected an array")
        try expectError(#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["sh"]},"root":{"path":"rootfs"}}"#,
                        "process.cwd: missing")
        try expectError(#"{"ociVersion":"1.0.2","process":{"user":{"uid":"root","gid":0},"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"}}"#,
                        "process.user.uid: expected a number")
        try expectError(#"{"ociVersion":"0.5","root":{"path":"rootfs"}}"#, "ociVersion: 0.5 is not a 1.x")
        try expectError(#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":[],"cwd":"/"},"root":{"path":"rootfs"}}"#,
                        "process.args: must not be empty")
        try expectError(#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["sh"],"cwd":"tmp"},"root":{"path":"rootfs"}}"#,
                        "process.cwd: must be an absolute path")
        try expectError(#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"hooks":{"poststop":[{"path":"rel/hook"}]}}"#,
                        "hooks.poststop[0].path: must be absolute")
        try expectError(#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"mounts":[{"destination":"proc","type":"proc"}]}"#,
                        "mounts[0].destination: must be absolute")
        try expectError(#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"net"}]}}"#,
                        "linux.namespaces[0].type: unknown namespace 'net'")
        try expectError(#"{"ociVersion":"1.0.2"}"#, "root: missing")
        try expectError(Self.minimal, "root.path", rootfs: false)
        #expect(throws: OCIBundle.LoadError.self) { try OCIBundle(path: "/nonexistent-bundle") }
    }

    @Test func ambientCapabilitiesThatCannotBeRaisedAreDropped() throws {
        // `runc spec` 1.1.5: ambient capabilities, no inheritable ones (runc skips them).
        let caps = #"["CAP_AUDIT_WRITE","CAP_KILL"]"#
        let json = #"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0},"#
            + #""capabilities":{"bounding":\#(caps),"permitted":\#(caps),"effective":\#(caps),"ambient":\#(caps)}}}"#
        let guest = GuestSpec(try Spec.decode(Data(json.utf8)), containerId: "c", guestRoot: "/r", rewriteMounts: false)
        let object = try #require(try JSONSerialization.jsonObject(with: try guest.json) as? [String: Any])
        let capabilities = (object["process"] as? [String: Any])?["capabilities"] as? [String: [String]]
        #expect(capabilities?["ambient"] == [])
        #expect(capabilities?["bounding"] == ["CAP_AUDIT_WRITE", "CAP_KILL"])
        let raisable = #"{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0},"capabilities":{"permitted":\#(caps),"inheritable":["CAP_KILL"],"ambient":\#(caps)}}"#
        let process = try JSONSerialization.jsonObject(with: GuestSpec.guestProcess(try Spec.Process.decode(Data(raisable.utf8)))) as? [String: Any]
        #expect((process?["capabilities"] as? [String: [String]])?["ambient"] == ["CAP_KILL"])
    }

    @Test func membersTheRuntimeDoesNotKnowReachTheGuest() throws {
        let json = #"{"ociVersion":"1.1.0","vm":{"hypervisor":{"path":"/x"}},"root":{"path":"rootfs"},"#
            + #""process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0},"ioPriority":{"class":"IOPRIO_CLASS_RT"}},"#
            + #""linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW"},"resources":{"devices":[{"allow":false,"access":"rwm"}]}}}"#
        let guest = GuestSpec(try Spec.decode(Data(json.utf8)), containerId: "c", guestRoot: "/r", rewriteMounts: true)
        let object = try #require(try JSONSerialization.jsonObject(with: try guest.json) as? [String: Any])
        #expect((object["vm"] as? [String: Any])?["hypervisor"] as? [String: String] == ["path": "/x"])
        #expect(((object["process"] as? [String: Any])?["ioPriority"] as? [String: String]) == ["class": "IOPRIO_CLASS_RT"])
        let linux = object["linux"] as? [String: Any]
        #expect((linux?["seccomp"] as? [String: String]) == ["defaultAction": "SCMP_ACT_ALLOW"])
        #expect(((linux?["resources"] as? [String: Any])?["devices"] as? [[String: Any]])?.count == 1)
        #expect((object["root"] as? [String: Any])?["path"] as? String == "/r")
    }

    @Test func guestSpecRewritesRootHooksNetnsAndBindMounts() throws {
        let hostFile = Fixtures.scratch.appendingPathComponent("resolv-\(UUID().uuidString).conf").path
        try "nameserver 10.0.0.1\n".write(toFile: hostFile, atomically: true, encoding: .utf8)
        let json = """
            {"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},"hooks":{"poststop":[{"path":"/bin/true"}]},
             "linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/proc/1/ns/net"}]},
             "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
                       {"destination":"/etc/resolv.conf","type":"bind","source":"\(hostFile)","options":["rbind","ro"]},
                       {"destination":"/data","type":"bind","source":"/tmp","options":["rbind"]},
                       {"destination":"/masked","type":"bind","source":"/dev/null","options":["bind","ro"]},
                       {"destination":"/tty","type":"bind","source":"/dev/tty","options":["bind"]}]}
            """
        let guest = GuestSpec(try Spec.decode(Data(json.utf8)), containerId: "c1", guestRoot: "/run/kata-containers/c1/rootfs", rewriteMounts: true)
        let object = try #require(try JSONSerialization.jsonObject(with: try guest.json) as? [String: Any])
        #expect((object["root"] as? [String: Any])?["path"] as? String == "/run/kata-containers/c1/rootfs")
        #expect((object["root"] as? [String: Any])?["readonly"] as? Bool == true)
        #expect(object["hooks"] == nil)
        let namespaces = ((object["linux"] as? [String: Any])?["namespaces"] as? [[String: String]]) ?? []
        #expect(namespaces == [["type": "pid"]])
        let mounts = object["mounts"] as? [[String: Any]] ?? []
        // /dev/null is the guest's own; other devices are never read into the guest.
        #expect(mounts.map { $0["destination"] as? String } == ["/proc", "/etc/resolv.conf", "/masked"])
        #expect(mounts[2]["source"] as? String == "/dev/null")
        #expect(guest.copiedFiles.count == 1 && guest.copiedFiles[0].hostPath == hostFile)
        #expect(mounts[1]["source"] as? String == guest.copiedFiles[0].guestPath)
        #expect(guest.warnings.count == 2 && guest.warnings[0].contains("/tmp") && guest.warnings[1].contains("/dev/tty"),
                "\(guest.warnings)")
        #expect(guest.sharedVolumes.isEmpty)
    }

    /// With a virtio-fs share a directory bind becomes a bind from the share's guest mount,
    /// and a volume for the host to bind there, with its ro and rbind.
    @Test func directoryBindsGoThroughTheShare() throws {
        let json = """
            {"ociVersion":"1.0.2","root":{"path":"rootfs"},
             "mounts":[{"destination":"/data","type":"bind","source":"/tmp","options":["rbind","rw"]},
                       {"destination":"/etc/config","type":"none","source":"/etc","options":["bind","ro"]}]}
            """
        let guest = GuestSpec(try Spec.decode(Data(json.utf8)), containerId: "c2", guestRoot: "/r", rewriteMounts: true, sharesDirectories: true)
        #expect(guest.warnings.isEmpty, "\(guest.warnings)")
        #expect(guest.sharedVolumes == [
            GuestSpec.SharedVolume(hostPath: "/tmp", name: "c2/volume-0-tmp", readOnly: false, recursive: true),
            GuestSpec.SharedVolume(hostPath: "/etc", name: "c2/volume-1-etc", readOnly: true, recursive: false),
        ])
        let mounts = try #require(try JSONSerialization.jsonObject(with: try guest.json) as? [String: Any])["mounts"] as? [[String: Any]] ?? []
        #expect(mounts.map { $0["source"] as? String } == ["/run/kata-containers/shared/containers/c2/volume-0-tmp",
                                                           "/run/kata-containers/shared/containers/c2/volume-1-etc"])
        #expect(mounts[1]["options"] as? [String] == ["bind", "ro"])
    }
}
