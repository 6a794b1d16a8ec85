import Foundation
import OCI
@testable import Runtime
import TestSupport
import Testing
import LinuxSupport

@Suite struct StateStoreTests {
    func store() -> StateStore {
        StateStore(root: Fixtures.scratch.appendingPathComponent("root-\(UUID().uuidString)").path)
    }

    @Test func idsFollowRuncsRule() {
        for good in ["a", "abc-DEF_1.2+3", String(repeating: "f", count: 64)] {
            #expect(throws: Never.self) { try StateStore.validate(id: good) }
        }
        for bad in ["", "a/b", "..", ".", "a b", "ä", "a\nb"] {
            #expect(throws: RuntimeError.self) { try StateStore.validate(id: bad) }
        }
    }

    @Test func recordsRoundTripAtomicallyAndIdsAreUnique() throws {
        let store = store()
        let dir = try store.createDirectory(for: "c1")
        #expect(throws: RuntimeError("container with id exists: c1")) { try store.createDirectory(for: "c1") }
        var record = ContainerRecord(id: "c1", bundle: "/b", rootfs: "/b/rootfs", stateDir: dir, socketDir: store.socketDirectory(of: "c1"),
                                     annotations: ["a": "b"])
        record.monitor = ProcessIdentity.of(getpid())
        record.initProcess = ProcessIdentity.of(getpid())
        record.status = .created
        record.execProcesses["e1"] = ProcessIdentity(pid: 1, startTime: 2)
        try store.save(record)
        #expect(try store.load("c1") == record)
        #expect(store.list() == ["c1"])
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(files.sorted() == ["state.json"])  // no temporary file left
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/state.json"))) as? [String: Any])
        for key in ["id", "bundle", "rootfs", "created", "status", "stateDir", "socketDir", "monitor", "initProcess", "version", "agentSocket"] {
            #expect(object[key] != nil, "state.json lacks \(key)")
        }
        #expect(throws: RuntimeError.notExist("c2")) { try store.load("c2") }
    }

    @Test func socketDirectoriesAreShortAndDistinct() {
        let long = StateStore(root: "/run/real-clients-docker/runtime-runc/moby")
        let id = String(repeating: "a", count: 64)
        let path = long.socketDirectory(of: id) + "/vsock.sock_1024"
        #expect(path.utf8.count < 80)
        #expect(long.socketDirectory(of: id) != long.socketDirectory(of: id + "b"))
        #expect(long.socketDirectory(of: id) != StateStore(root: "/other").socketDirectory(of: id))
    }

    @Test func effectiveStatusFollowsTheProcesses() throws {
        var record = ContainerRecord(id: "x", bundle: "/b", rootfs: "/r", stateDir: "/s", socketDir: "/k", annotations: nil)
        #expect(StateStore.effectiveStatus(record) == .stopped)  // creating, monitor gone: a dead create
        let me = try #require(ProcessIdentity.of(getpid()))
        #expect(me.isAlive)
        #expect(!ProcessIdentity(pid: me.pid, startTime: me.startTime + 1).isAlive)  // a reused pid is not ours
        record.monitor = me
        #expect(StateStore.effectiveStatus(record) == .creating)
        record.initProcess = me
        record.status = .running
        #expect(StateStore.effectiveStatus(record) == .running)
        #expect(StateStore.ociState(record).pid == getpid())
        record.initProcess = ProcessIdentity(pid: me.pid, startTime: 1)
        #expect(StateStore.effectiveStatus(record) == .stopped)
        #expect(StateStore.ociState(record).pid == 0)
        record.initProcess = me
        record.exitStatus = 3
        #expect(StateStore.effectiveStatus(record) == .stopped)
    }

    @Test func ociStateJSONHasTheSpecFields() throws {
        let state = OCIState(id: "c", status: .created, pid: 42, bundle: "/b", rootfs: "/b/rootfs", created: Timestamp.now(),
                             annotations: ["k": "v"])
        let object = try #require(try JSONSerialization.jsonObject(with: state.jsonData()) as? [String: Any])
        #expect(object["ociVersion"] as? String == Spec.version)
        #expect(object["id"] as? String == "c" && object["status"] as? String == "created" && object["pid"] as? Int == 42)
        #expect(object["bundle"] as? String == "/b" && (object["annotations"] as? [String: String]) == ["k": "v"])
        let created = try #require(object["created"] as? String)
        #expect(created.count == 30 && created.hasSuffix("Z"))
    }
}

@Suite struct HookTests {
    func script(_ body: String) throws -> String {
        let path = Fixtures.scratch.appendingPathComponent("hook-\(UUID().uuidString).sh").path
        try "#!/bin/sh\n\(body)\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    let state = OCIState(id: "hooked", status: .creating, pid: 7, bundle: "/bundle", rootfs: "/bundle/rootfs", created: "t", annotations: nil)

    @Test func hooksRunInOrderWithArgvEnvAndStateOnStdin() throws {
        let log = Fixtures.scratch.appendingPathComponent("hooks-\(UUID().uuidString).log").path
        let command = "echo \"$0 $1 $HOOK_VAR $(cat)\" >> \(log)"
        var hooks = Spec.Hooks(.init())
        hooks.createRuntime = [Spec.Hook(.init(path: "/bin/sh", args: ["sh", "-c", command, "first", "a"], env: ["HOOK_VAR=x"])),
                               Spec.Hook(.init(path: "/bin/sh", args: ["sh", "-c", command, "second", "b"], env: ["HOOK_VAR=y"]))]
        try HookRunner().run(.createRuntime, hooks: hooks, state: state)
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].hasPrefix("first a x {") && lines[1].hasPrefix("second b y {"))
        let json = try #require(lines[0].firstIndex(of: "{").map { String(lines[0][$0...]) })
        #expect(try JSONDecoder().decode(OCIState.self, from: Data(json.utf8)) == state)
    }

    @Test func aFailingHookStopsFatalKindsOnly() throws {
        let log = Fixtures.scratch.appendingPathComponent("hooks-\(UUID().uuidString).log").path
        let failing = try script("echo broken >&2; exit 3")
        let recorder = try script("echo ran >> \(log)")
        var hooks = Spec.Hooks(.init())
        hooks.prestart = [Spec.Hook(.init(path: failing)), Spec.Hook(.init(path: recorder))]
        hooks.poststop = [Spec.Hook(.init(path: failing)), Spec.Hook(.init(path: recorder))]
        do {
            try HookRunner().run(.prestart, hooks: hooks, state: state)
            Issue.record("a failing prestart hook was accepted")
        } catch {
            #expect("\(error)".contains("prestart hook #0") && "\(error)".contains("exited with status 3: broken"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: log))
        var warnings: [String] = []
        try HookRunner(warn: { warnings.append($0) }).run(.poststop, hooks: hooks, state: state)
        #expect(warnings.count == 1)
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "ran\n")
    }

    @Test func aHookPastItsTimeoutIsKilled() throws {
        var hooks = Spec.Hooks(.init())
        hooks.createContainer = [Spec.Hook(.init(path: "/bin/sleep", args: ["sleep", "30"], timeout: 1))]
        let start = Date()
        #expect(throws: HookRunner.HookError.self) { try HookRunner().run(.createContainer, hooks: hooks, state: state) }
        #expect(Date().timeIntervalSince(start) < 25)
        hooks.createContainer = [Spec.Hook(.init(path: "/nonexistent/hook"))]
        #expect(throws: HookRunner.HookError.self) { try HookRunner().run(.createContainer, hooks: hooks, state: state) }
    }
}

@Suite struct ConsoleSocketTests {
    @Test func theMasterArrivesOverSCMRights() throws {
        let path = Fixtures.scratch.appendingPathComponent("console-\(UUID().uuidString.prefix(8)).sock").path
        let listener = try UnixSocket.listen(at: path)
        let terminal = try PseudoTerminal()
        terminal.setSize(rows: 40, columns: 100)
        let name = terminal.name
        try terminal.sendMaster(to: path)
        let connection = try #require(try listener.accept(timeoutMs: 5000))
        let (payload, fds) = try connection.receive()
        #expect(String(decoding: payload, as: UTF8.self) == name)
        #expect(fds.count == 1)
        let master = try #require(fds.first)
        defer { close(master) }
        // Bytes written on the runtime's side come out of the received master, and back.
        try FileDescriptors.writeAll(terminal.slave, Array("from the container".utf8))
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = read(master, &buffer, buffer.count)
        #expect(String(decoding: buffer[0..<max(count, 0)], as: UTF8.self) == "from the container")
        try FileDescriptors.writeAll(master, Array("typed".utf8))
        let back = read(terminal.slave, &buffer, buffer.count)
        #expect(String(decoding: buffer[0..<max(back, 0)], as: UTF8.self) == "typed")
        var size = winsize()
        #expect(ioctl(master, UInt(TIOCGWINSZ), &size) == 0 && size.ws_row == 40 && size.ws_col == 100)
    }
}

@Suite struct NetworkPlanTests {
    @Test func vethsAddressesAndRoutesFromIpJSON() throws {
        let links = #"""
            [{"ifindex":1,"ifname":"lo","mtu":65536,"link_type":"loopback","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
             {"ifindex":2,"ifname":"eth0","mtu":1450,"link_type":"ether","address":"aa:bb:cc:00:11:22","linkinfo":{"info_kind":"veth"},
              "addr_info":[{"family":"inet","local":"10.88.0.5","prefixlen":16},{"family":"inet6","local":"fe80::1","prefixlen":64},{"family":"inet6","local":"fd00::5","prefixlen":64}]},
             {"ifindex":3,"ifname":"tap9","mtu":1500,"link_type":"ether","address":"aa:aa:aa:aa:aa:aa","linkinfo":{"info_kind":"tun"}}]
            """#
        let routes = #"[{"dst":"default","gateway":"10.88.0.1","dev":"eth0"},{"dst":"10.88.0.0/16","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"10.88.0.5"}]"#
        let routes6 = #"""
            [{"dst":"fd00::/64","dev":"eth0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},
             {"dst":"fe80::/64","dev":"eth0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},
             {"type":"unreachable","dst":"fd01::/64","dev":"lo","metric":1024,"flags":[]},
             {"dst":"default","gateway":"fe80::1","dev":"eth0","metric":1024,"flags":[],"pref":"medium"}]
            """#
        let plans = try NetworkPlan.parse(links: Data(links.utf8), routes: [Data(routes.utf8), Data(routes6.utf8)])
        #expect(plans.count == 1)
        let plan = try #require(plans.first)
        #expect(plan.veth == "eth0" && plan.tap == "tap0_kata" && plan.mtu == 1450 && plan.mac == "aa:bb:cc:00:11:22")
        #expect(plan.macBytes == [0xaa, 0xbb, 0xcc, 0x00, 0x11, 0x22])
        #expect(plan.addresses.map(\.local) == ["10.88.0.5", "fd00::5"])
        #expect(plan.routeList.map(\.destination) == ["default", "10.88.0.0/16", "fd00::/64", "default"])
        #expect(plan.routeList[3].gateway == "fe80::1")
        #expect(plan.routeList[0].gateway == "10.88.0.1" && plan.routeList[1].scope == 253)
        let interface = plan.agentInterface(guestDevice: "eth0")
        #expect(interface.hwAddr == "aa:bb:cc:00:11:22" && interface.mtu == 1450 && interface.ipaddresses.count == 2)
        #expect(interface.ipaddresses[1].family == .v6 && interface.ipaddresses[0].mask == "16")
    }
}

/// Kata's tcfilter plumbing on a real namespace: a veth pair with one end in a test-made
/// namespace, as CNI leaves it; the runtime finds the veth, makes the tap and both
/// redirects, and removes them again.
@Suite struct NetworkSetupTests {
    func ip(_ arguments: [String]) throws -> Command.Result { try VethNamespace.ip(arguments) }

    @Test func tapsAndMirredRedirectsComeAndGo() throws {
        guard let network = try VethNamespace(subnet: "10.77.3", mtu: 1400, defaultRoute: true) else {
            Issue.record("cannot create a network namespace here")
            return
        }
        defer { network.remove() }
        let namespace = network.name, containerEnd = network.containerEnd, path = network.path

        let plans = try NetworkPlan.discover(namespace: path)
        #expect(plans.count == 1)
        let plan = try #require(plans.first)
        #expect(plan.veth == containerEnd && plan.mtu == 1400)
        #expect(plan.addresses.map(\.local) == ["10.77.3.2"])
        #expect(plan.routeList.contains { $0.destination == "default" && $0.gateway == "10.77.3.1" })

        let stateDir = Fixtures.scratch.appendingPathComponent("net-\(namespace)").path
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        try NetworkPlan.setUp(plans, namespace: path, stateDir: stateDir)
        #expect(NetworkPlan.load(from: stateDir) == plans)
        let links = try ip(["-n", namespace, "link", "show", plan.tap])
        #expect(links.status == 0 && links.stdout.contains("mtu 1400"), "\(links.stderr)")
        let toTap = try NetworkNamespace.run(in: path, ["tc", "filter", "show", "dev", containerEnd, "ingress"])
        #expect(toTap.contains("mirred") && toTap.contains(plan.tap), "\(toTap)")
        let toVeth = try NetworkNamespace.run(in: path, ["tc", "filter", "show", "dev", plan.tap, "ingress"])
        #expect(toVeth.contains("mirred") && toVeth.contains(containerEnd), "\(toVeth)")

        NetworkPlan.tearDown(taps: [plan.tap], stateDir: stateDir, namespace: path)
        #expect(try ip(["-n", namespace, "link", "show", plan.tap]).status != 0)
        let after = try NetworkNamespace.run(in: path, ["tc", "qdisc", "show", "dev", containerEnd])
        #expect(!after.contains("ingress"), "\(after)")
        #expect(try ip(["-n", namespace, "link", "show", containerEnd]).status == 0)  // the veth stays
    }
}
