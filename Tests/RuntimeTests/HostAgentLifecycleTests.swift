import Foundation
import Runtime
import TestSupport
import Testing

/// A real kata-agent on the host (PID 1 of fresh namespaces, `--listen unix:PATH`), which
/// the runtime reaches through `[agent.kata] debug_agent_socket` instead of booting a VM:
/// the whole lifecycle of the runtime's processes (monitor, process shims, state, hooks,
/// console socket, cleanup) with a real agent, at host speed.
final class HostAgent {
    let socketPath: String
    private let process: BackgroundCommand

    init() throws {
        let name = UUID().uuidString.prefix(8)
        socketPath = Fixtures.scratch.appendingPathComponent("rt-agent-\(name).sock").path
        let state = Fixtures.scratch.appendingPathComponent("rt-agent-\(name)-state").path
        process = try BackgroundCommand("/usr/bin/unshare", [
            "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child", "--mount-proc",
            RuntimeHarness.agentBinary, "--listen", "unix:\(socketPath)", "--state-dir", state,
        ])
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: socketPath) {
            guard Date() < deadline else {
                throw Fixtures.FixtureError("kata-agent did not listen on \(socketPath): \(process.finish(timeout: 0))")
            }
            usleep(20_000)
        }
    }

    /// The agent's own pid (unshare's child): its mount table is the "guest's".
    var pid: Int32? {
        RuntimeHarness.processes { $0.first?.hasSuffix("kata-agent") == true && $0.contains("unix:\(socketPath)") }.first?.pid
    }

    var configuration: String { "[agent.kata]\ndial_timeout = 20\ndebug_agent_socket = \"\(socketPath)\"\n" }

    @discardableResult
    func stop() -> String { process.finish(timeout: 0) }

    deinit { _ = process.finish(timeout: 0) }
}

@Suite(.serialized) struct HostAgentLifecycleTests {

    static func rssKiB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
    }

    func state(_ harness: RuntimeHarness, _ id: String) throws -> [String: Any] {
        let result = try harness.run(["state", id])
        guard result.status == 0 else { throw Fixtures.FixtureError("state \(id): \(result.stderr)") }
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
    }

    @Test func runPrintsTheOutputAndExitCodeAndLeavesNothing() throws {
        let agent = try HostAgent()
        let harness = try RuntimeHarness(config: agent.configuration)
        let bundle = try harness.makeBundle(["sh", "-c", "echo hello from the container; echo to stderr >&2; exit 3"])
        let result = try harness.run(["run", "--bundle", bundle, "r1"])
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stdout == "hello from the container\n")
        #expect(result.stderr.contains("to stderr"))
        #expect(harness.leftovers("r1").isEmpty)

        // stdin reaches the container and its end closes the container's stdin.
        let cat = try harness.makeBundle(["sh", "-c", "cat; echo done"])
        let piped = try harness.run(["run", "-b", cat, "r2"], stdin: "line one\nline two\n")
        #expect(piped.status == 0 && piped.stdout == "line one\nline two\ndone\n", "\(piped.stderr)")

        // Measurement (reported, not asserted): `run` of `true`.
        let truth = try harness.makeBundle(["true"])
        var times: [Double] = []
        for index in 0..<3 {
            let run = try harness.run(["run", "-b", truth, "t\(index)"])
            #expect(run.status == 0, "\(run.stderr)")
            times.append(run.elapsed)
        }
        print("kata-runtime run true (host agent): \(times.map { String(format: "%.3f s", $0) }.joined(separator: ", "))")
        #expect(harness.leftovers("t0").isEmpty)
    }

    @Test func pauseFreezesAndResumeThaws() throws {
        let agent = try HostAgent()
        defer { agent.stop() }
        let harness = try RuntimeHarness(config: agent.configuration)
        let bundle = try harness.makeBundle(["sh", "-c", "while true; do echo tick >> /tmp/ticks; sleep 0.05; done"]) { spec in
            spec["root"] = ["path": "rootfs", "readonly": false]  // the ticks land in the bundle, where the test counts them
        }
        let ticks = bundle + "/rootfs/tmp/ticks"
        func count() -> Int { ((try? String(contentsOfFile: ticks, encoding: .utf8)) ?? "").split(separator: "\n").count }
        #expect(try harness.run(["create", "--bundle", bundle, "p1"]).status == 0)
        defer { _ = try? harness.run(["delete", "-f", "p1"]) }
        #expect(try harness.run(["pause", "p1"]).status != 0)  // created, not running
        #expect(try harness.run(["start", "p1"]).status == 0)
        #expect(Poll.until { count() > 0 })

        let pause = try harness.run(["pause", "p1"])
        #expect(pause.status == 0, "\(pause.stderr)")
        #expect(try state(harness, "p1")["status"] as? String == "paused")
        let frozenAt = count()
        usleep(600_000)
        #expect(count() == frozenAt, "the container kept running while paused")
        let exec = try harness.run(["exec", "p1", "true"])
        #expect(exec.status != 0 && exec.stderr.contains("paused"), "\(exec.stderr)")
        #expect(try harness.run(["delete", "p1"]).status != 0)
        #expect(try harness.run(["pause", "p1"]).status != 0)

        let resume = try harness.run(["resume", "p1"])
        #expect(resume.status == 0, "\(resume.stderr)")
        #expect(try state(harness, "p1")["status"] as? String == "running")
        #expect(Poll.until { count() > frozenAt + 2 })
        #expect(try harness.run(["resume", "p1"]).status != 0)

        // A paused container can be killed and force-deleted.
        #expect(try harness.run(["pause", "p1"]).status == 0)
        #expect(try harness.run(["delete", "--force", "p1"]).status == 0)
        #expect(harness.leftovers("p1").isEmpty)
    }

    /// kill signals the init only (here a shell that, as its namespace's PID 1, ignores
    /// SIGTERM); kill --all reaches its child too.
    @Test func killAllSignalsEveryProcess() throws {
        let agent = try HostAgent()
        defer { agent.stop() }
        let harness = try RuntimeHarness(config: agent.configuration)
        let bundle = try harness.makeBundle(["sh", "-c", "sleep 1000; echo > /tmp/child-gone; sleep 1000"]) { spec in
            spec["root"] = ["path": "rootfs", "readonly": false]
        }
        let marker = bundle + "/rootfs/tmp/child-gone"
        #expect(try harness.run(["run", "-d", "--bundle", bundle, "k1"]).status == 0)
        defer { _ = try? harness.run(["delete", "-f", "k1"]) }
        #expect(Poll.until { (try? harness.run(["ps", "--format", "json", "k1"]).stdout.split(separator: ",").count) == 2 })
        #expect(try harness.run(["kill", "k1", "TERM"]).status == 0)
        usleep(500_000)
        #expect(!FileManager.default.fileExists(atPath: marker))
        #expect(try harness.run(["kill", "--all", "k1", "TERM"]).status == 0)
        #expect(Poll.until { FileManager.default.fileExists(atPath: marker) })
        #expect(try state(harness, "k1")["status"] as? String == "running")
    }

    /// update sets the container's cgroup limits: with --pids-limit 3 the container
    /// cannot fork three more processes; with -1 it can again.
    @Test func updateChangesTheLimits() throws {
        let agent = try HostAgent()
        defer { agent.stop() }
        let harness = try RuntimeHarness(config: agent.configuration)
        let bundle = try harness.makeBundle(["sh", "-c", "while true; do sleep 1; done"])
        #expect(try harness.run(["run", "-d", "--bundle", bundle, "u1"]).status == 0)
        defer { _ = try? harness.run(["delete", "-f", "u1"]) }
        let forks = ["exec", "u1", "sh", "-c", "sleep 1 & sleep 1 & sleep 1 & wait; echo forked"]
        #expect(try harness.run(forks).stdout.contains("forked"))

        let limit = try harness.run(["update", "--pids-limit", "3", "u1"])
        #expect(limit.status == 0, "\(limit.stderr)")
        let limited = try harness.run(forks)
        #expect(!limited.stdout.contains("forked"), "\(limited.stdout) \(limited.stderr)")

        // The same through --resources on stdin, as containerd passes it.
        let lifted = try harness.run(["update", "--resources", "-", "u1"], stdin: #"{"pids":{"limit":-1}}"#)
        #expect(lifted.status == 0, "\(lifted.stderr)")
        #expect(try harness.run(forks).stdout.contains("forked"))

        let memory = try harness.run(["update", "--memory", "256m", "--cpu-quota", "50000", "--cpu-period", "100000", "u1"])
        #expect(memory.status == 0, "\(memory.stderr)")
        let bad = try harness.run(["update", "--memory", "12x", "u1"])
        #expect(bad.status != 0 && bad.stderr.contains("--memory"), "\(bad.stderr)")
        let garbage = try harness.run(["update", "--resources", "-", "u1"], stdin: "{not json")
        #expect(garbage.status != 0 && garbage.stderr.contains("--resources"), "\(garbage.stderr)")
        #expect(try harness.run(["update", "--pids-limit", "3", "no-such-container"]).status != 0)
    }

    @Test func createStartStateExecPsKillDelete() throws {
        let agent = try HostAgent()
        let harness = try RuntimeHarness(config: agent.configuration)
        let bundle = try harness.makeBundle(["sh", "-c", "echo started; exec sleep 1000"])
        let pidFile = harness.directory + "/init.pid"
        let create = try harness.run(["create", "--bundle", bundle, "--pid-file", pidFile, "c1"])
        #expect(create.status == 0, "\(create.stderr)")
        let pid = try #require(Int32(try String(contentsOfFile: pidFile, encoding: .utf8)))
        var current = try state(harness, "c1")
        #expect(current["status"] as? String == "created")
        #expect(current["pid"] as? Int == Int(pid))
        #expect(current["bundle"] as? String == bundle)
        #expect(RuntimeHarness.processExists(pid))
        let record = try StateStore(root: harness.root).load("c1")
        let monitor = try #require(record.monitor)
        #expect(RuntimeHarness.processExists(monitor.pid))

        #expect(try harness.run(["start", "c1"]).status == 0)
        // Measurement (reported): the runtime's own resident memory.
        print("kata-runtime RSS (host agent): monitor \(Self.rssKiB(monitor.pid)) KiB, process shim \(Self.rssKiB(pid)) KiB")
        current = try state(harness, "c1")
        #expect(current["status"] as? String == "running")
        let again = try harness.run(["start", "c1"])
        #expect(again.status == 1 && again.stderr.contains("running"), "\(again.stderr)")
        let list = try harness.run(["list", "--format", "json"])
        #expect(list.stdout.contains("\"id\":\"c1\""))

        let exec = try harness.run(["exec", "c1", "sh", "-c", "echo exec output; exit 7"])
        #expect(exec.status == 7, "\(exec.stderr)")
        #expect(exec.stdout == "exec output\n")
        let processFile = harness.directory + "/process.json"
        try #"{"args":["sh","-c","sleep 1000"],"cwd":"/","user":{"uid":0,"gid":0},"env":["PATH=/bin"]}"#
            .write(toFile: processFile, atomically: true, encoding: .utf8)
        let execPid = harness.directory + "/exec.pid"
        let detached = try harness.run(["exec", "--process", processFile, "--detach", "--pid-file", execPid, "c1"])
        #expect(detached.status == 0, "\(detached.stderr)")
        let shim = try #require(Int32(try String(contentsOfFile: execPid, encoding: .utf8)))
        #expect(RuntimeHarness.processExists(shim))

        let ps = try harness.run(["ps", "--format", "json", "c1"])
        #expect(ps.status == 0, "\(ps.stderr)")
        let pids = try JSONSerialization.jsonObject(with: Data(ps.stdout.utf8)) as? [Int] ?? []
        #expect(pids.count >= 2, "\(ps.stdout)")

        let refused = try harness.run(["delete", "c1"])
        #expect(refused.status == 1 && refused.stderr.contains("not stopped"), "\(refused.stderr)")

        #expect(try harness.run(["kill", "c1", "9"]).status == 0)
        #expect(try Poll.until { (try state(harness, "c1"))["status"] as? String == "stopped" })
        #expect(try Poll.until { !RuntimeHarness.processExists(pid) })
        let stoppedKill = try harness.run(["kill", "c1", "15"])
        #expect(stoppedKill.status == 1 && stoppedKill.stderr.contains("not running"))
        let stoppedExec = try harness.run(["exec", "c1", "true"])
        #expect(stoppedExec.status == 1)

        #expect(try harness.run(["delete", "c1"]).status == 0)
        #expect(harness.leftovers("c1").isEmpty)
        #expect(!RuntimeHarness.processExists(monitor.pid))
        #expect(try Poll.until(5) { !RuntimeHarness.processExists(shim) })
        #expect(try harness.run(["state", "c1"]).status == 1)
    }

    @Test func killAndForcedDeleteAtEveryStage() throws {
        let agent = try HostAgent()
        let harness = try RuntimeHarness(config: agent.configuration)
        let bundle = try harness.makeBundle(["sleep", "1000"])
        // Created, never started: kill, then delete.
        #expect(try harness.run(["create", "-b", bundle, "k1"]).status == 0)
        #expect(try harness.run(["kill", "k1", "KILL"]).status == 0)
        #expect(try Poll.until { (try state(harness, "k1"))["status"] as? String == "stopped" })
        #expect(try harness.run(["delete", "k1"]).status == 0)
        #expect(harness.leftovers("k1").isEmpty)
        // Created: delete --force directly.
        #expect(try harness.run(["create", "-b", bundle, "k2"]).status == 0)
        #expect(try harness.run(["delete", "--force", "k2"]).status == 0)
        #expect(harness.leftovers("k2").isEmpty)
        // Running: delete --force.
        #expect(try harness.run(["run", "-d", "-b", bundle, "k3"]).status == 0)
        #expect((try state(harness, "k3"))["status"] as? String == "running")
        #expect(try harness.run(["delete", "-f", "k3"]).status == 0)
        #expect(harness.leftovers("k3").isEmpty)
        // Duplicate ids are refused.
        #expect(try harness.run(["create", "-b", bundle, "k4"]).status == 0)
        let duplicate = try harness.run(["create", "-b", bundle, "k4"])
        #expect(duplicate.status == 1 && duplicate.stderr.contains("container with id exists: k4"))
        #expect(try harness.run(["delete", "-f", "k4"]).status == 0)
    }

    @Test func cleanupAfterTheMonitorIsKilled() throws {
        let agent = try HostAgent()
        let harness = try RuntimeHarness(config: agent.configuration)
        let bundle = try harness.makeBundle(["sleep", "1000"])
        #expect(try harness.run(["run", "-d", "-b", bundle, "m1"]).status == 0)
        let record = try StateStore(root: harness.root).load("m1")
        let monitor = try #require(record.monitor)
        let shim = try #require(record.initProcess)
        kill(monitor.pid, SIGKILL)
        #expect(try Poll.until { !RuntimeHarness.processExists(monitor.pid) })
        #expect((try state(harness, "m1"))["status"] as? String == "stopped")
        let delete = try harness.run(["delete", "m1"])
        #expect(delete.status == 0, "\(delete.stderr)")
        #expect(harness.leftovers("m1").isEmpty)
        #expect(try Poll.until(5) { !RuntimeHarness.processExists(shim.pid) })

        // A caller that removes the state without delete: the sandbox stops by itself.
        #expect(try harness.run(["run", "-d", "-b", bundle, "m2"]).status == 0)
        let orphan = try StateStore(root: harness.root).load("m2")
        let orphanMonitor = try #require(orphan.monitor), orphanShim = try #require(orphan.initProcess)
        try FileManager.default.removeItem(atPath: harness.root)
        #expect(try Poll.until(20) { !RuntimeHarness.processExists(orphanMonitor.pid) })
        #expect(try Poll.until(5) { !RuntimeHarness.processExists(orphanShim.pid) })
    }

    @Test func consoleSocketGetsThePtyMaster() throws {
        let agent = try HostAgent()
        let harness = try RuntimeHarness(config: agent.configuration)
        let bundle = try harness.makeBundle(["sh", "-c", "tty; [ -t 0 ] && [ -t 1 ] && echo TTYOK; stty size; read line; echo got $line"], terminal: true) { spec in
            var process = spec["process"] as? [String: Any] ?? [:]
            process["consoleSize"] = ["height": 40, "width": 120]
            spec["process"] = process
        }
        let socketPath = harness.directory + "/console.sock"
        let listener = try UnixSocket.listen(at: socketPath)
        let create = try harness.run(["create", "-b", bundle, "--console-socket", socketPath, "t1"])
        #expect(create.status == 0, "\(create.stderr)")
        let connection = try #require(try listener.accept(timeoutMs: 10_000))
        let (name, fds) = try connection.receive()
        #expect(String(decoding: name, as: UTF8.self).hasPrefix("/dev/pts/"))
        let master = try #require(fds.first)
        defer { close(master) }
        #expect(try harness.run(["start", "t1"]).status == 0)
        var output = ""
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(20)
        var sent = false
        while Date() < deadline && !output.contains("got hello") {
            var pfd = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 100) > 0 {
                let count = read(master, &buffer, buffer.count)
                if count <= 0 { break }
                output += String(decoding: buffer[0..<count], as: UTF8.self)
            }
            if output.contains("TTYOK") && !sent {
                _ = write(master, "hello\r", 6)
                sent = true
            }
        }
        #expect(output.contains("/dev/pts/"), "\(output)")
        #expect(output.contains("40 120"), "\(output)")  // the spec's consoleSize
        #expect(output.contains("TTYOK") && output.contains("got hello"), "\(output)")
        #expect(try harness.run(["delete", "-f", "t1"]).status == 0)
        #expect(harness.leftovers("t1").isEmpty)
    }

    @Test func hooksRunAtTheirMomentsWithTheState() throws {
        let agent = try HostAgent()
        let harness = try RuntimeHarness(config: agent.configuration)
        let log = harness.directory + "/hooks.log"
        let bundle = try harness.makeBundle(["sleep", "1000"]) { spec in
            func hook(_ name: String) -> [[String: Any]] {
                [["path": "/bin/sh", "args": ["sh", "-c", "read -r state; echo \"\(name) $state\" >> \(log)"]]]
            }
            spec["hooks"] = ["prestart": hook("prestart"), "createRuntime": hook("createRuntime"),
                             "createContainer": hook("createContainer"), "startContainer": hook("startContainer"),
                             "poststart": hook("poststart"), "poststop": hook("poststop")]
        }
        func logged() -> [String] {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map { String($0.prefix { $0 != " " }) }
        }
        #expect(try harness.run(["create", "-b", bundle, "h1"]).status == 0)
        #expect(logged() == ["prestart", "createRuntime", "createContainer"])
        #expect(try harness.run(["start", "h1"]).status == 0)
        #expect(logged() == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart"])
        #expect(try harness.run(["delete", "-f", "h1"]).status == 0)
        #expect(logged().last == "poststop")
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        let stateJSON = String(lines[0].drop { $0 != " " }.dropFirst())
        let state = try JSONDecoder().decode(OCIState.self, from: Data(stateJSON.utf8))
        #expect(state.id == "h1" && state.bundle == bundle && state.pid > 0)

        // A failing createRuntime hook fails create and leaves nothing.
        let failing = try harness.makeBundle(["true"]) { spec in
            spec["hooks"] = ["createRuntime": [["path": "/bin/false"]]]
        }
        let result = try harness.run(["create", "-b", failing, "h2"])
        #expect(result.status == 1 && result.stderr.contains("createRuntime hook #0"), "\(result.stderr)")
        #expect(harness.leftovers("h2").isEmpty)
    }
}
