import Foundation
import Runtime
import TestSupport
import Testing

/// kill -9 of `create`, `start`, `exec` and `delete` at every step: each command is killed
/// after delays swept across its whole run (its uncut duration measured first), and the
/// step each kill landed in is read from what it left (state, monitor, fifo, pid file).
/// After each kill a killed `create` must not leave a sandbox monitor running, and after
/// the next `delete --force` nothing is left: no state or socket dir, no runtime process
/// (monitor, shims), no container process in the agent, no mount under the bundle.
/// Host-agent mode (no VM, so no taps: those are VM-only and torn down from the record).
@Suite(.serialized) struct CrashConsistencyTests {
    static let steps = 24

    /// Runs `kata-runtime <arguments>` and SIGKILLs it after `delay` seconds; true if it
    /// was killed (not finished before).
    static func runKilled(_ harness: RuntimeHarness, _ arguments: [String], after delay: Double) throws -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: RuntimeHarness.binary)
        process.arguments = ["--root", harness.root, "--config", harness.configPath] + arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(delay)
        while process.isRunning, case let left = deadline.timeIntervalSinceNow, left > 0 {
            usleep(UInt32(min(left, 0.001) * 1_000_000))
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return process.terminationReason == .uncaughtSignal
    }

    /// The delays: 0 to 110 % of the uncut duration, in `steps` even steps.
    static func delays(uncut: Double) -> [Double] {
        (0..<steps).map { uncut * 1.1 * Double($0) / Double(steps - 1) }
    }


    /// The step a kill landed in, from what the runtime left for `id`.
    static func step(_ harness: RuntimeHarness, _ id: String) -> String {
        let store = StateStore(root: harness.root)
        let directory = store.directory(of: id)
        guard FileManager.default.fileExists(atPath: directory) else { return "no state dir" }
        guard let record = try? store.load(id) else { return "state dir without state.json" }
        var step = record.status.rawValue
        if record.monitor == nil { step += ", no monitor" } else if record.initProcess == nil {
            let log = (try? String(contentsOfFile: record.monitorLogPath, encoding: .utf8)) ?? ""
            step += log.contains("ready") ? ", monitor ready" : ", monitor recorded, not ready"
        }
        if record.initProcess != nil && record.status == .creating { step += ", init shim recorded" }
        if record.status == .created {
            step += FileManager.default.fileExists(atPath: record.startFifoPath) ? ", start fifo" : ", start fifo released"
        }
        if !record.execProcesses.isEmpty { step += ", \(record.execProcesses.count) exec(s) recorded" } else {
            if !RuntimeHarness.processes(withArgv: execArgv).isEmpty { step += ", exec process in the agent" }
            if harness.runtimeProcesses().contains(where: { $0.contains("--exec-id") }) { step += ", exec shim unrecorded" }
        }
        if let monitor = record.monitor, !monitor.isAlive { step += ", monitor dead" }
        return step
    }

    /// What is left of `id` and of the container process `argv` after `delete --force`.
    static func leftovers(_ harness: RuntimeHarness, _ id: String, agent: HostAgent, bundle: String, argv: [[String]]) -> [String] {
        var left: [String] = []
        _ = Poll.until(6) {  // unrecorded shims leave within 2 s of their state going away
            left = harness.leftovers(id) + harness.runtimeProcesses()
                + argv.flatMap { RuntimeHarness.processes(withArgv: $0).map { "container process \($0)" } }
                + RuntimeHarness.mounts(under: bundle).map { "mount \($0)" }
                + (agent.pid.map { RuntimeHarness.mounts(under: bundle, of: $0).map { "agent mount \($0)" } } ?? [])
            return left.isEmpty
        }
        return left
    }

    /// Sweeps kills of one command; `prepare` makes the container it acts on (returns the
    /// container's argv), `command` is what is killed.
    func sweep(_ name: String, prepare: (RuntimeHarness, String, String) throws -> Void, command: (String, String) -> [String],
               argv: [[String]], bundleArgs: [String]) throws -> [String: Int] {
        let agent = try HostAgent()
        defer { agent.stop() }
        let harness = try RuntimeHarness(config: agent.configuration)
        let bundle = try harness.makeBundle(bundleArgs)
        // The uncut duration.
        try prepare(harness, bundle, "\(name)-uncut")
        let began = Date()
        let uncutRun = try harness.run(command(bundle, "\(name)-uncut"))
        let uncut = Date().timeIntervalSince(began)
        #expect(uncutRun.status == 0, "\(name) uncut: \(uncutRun.stderr)")
        #expect(try harness.run(["delete", "--force", "\(name)-uncut"]).status == 0)

        var hit: [String: Int] = [:]
        for (index, delay) in Self.delays(uncut: uncut).enumerated() {
            let id = "\(name)\(index)"
            try prepare(harness, bundle, id)
            let killed = try Self.runKilled(harness, command(bundle, id), after: delay)
            let step = killed ? Self.step(harness, id) : "finished"
            hit[step, default: 0] += 1
            if name == "create" && killed && !step.hasPrefix("created") {
                // The monitor (and a VM) goes with its create (CreatorLink), without any delete.
                let monitors = { RuntimeHarness.processes { $0.contains(harness.root) && $0.contains("sandbox-monitor") } }
                #expect(Poll.until(5) { monitors().isEmpty }, "create killed at \(delay) s (\(step)): monitor left \(monitors())")
            }
            let delete = try harness.run(["delete", "--force", id])
            #expect(delete.status == 0, "\(name) killed at \(delay) s (\(step)): delete --force: \(delete.stderr)")
            // delete --force itself ends the monitor: it does not wait for the monitor to notice.
            let monitors = RuntimeHarness.processes { $0.contains(harness.root) && $0.contains("sandbox-monitor") }
            #expect(monitors.isEmpty, "\(name) killed at \(delay) s (\(step)): monitor alive after delete --force: \(monitors)")
            let left = Self.leftovers(harness, id, agent: agent, bundle: bundle, argv: argv)
            #expect(left.isEmpty, "\(name) killed after \(String(format: "%.3f", delay)) s (\(step)): left \(left)")
        }
        print("SIGKILL of \(name) (uncut \(String(format: "%.3f", uncut)) s), \(Self.steps) kills, steps hit: "
              + hit.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: "; "))
        return hit
    }

    static let initArgv = ["sleep", "1000271"]
    static let execArgv = ["sleep", "1000272"]

    /// A created container, and a running one.
    static func created(_ harness: RuntimeHarness, _ bundle: String, _ id: String) throws {
        let create = try harness.run(["create", "-b", bundle, id])
        guard create.status == 0 else { throw Fixtures.FixtureError("create \(id): \(create.stderr)") }
    }

    static func running(_ harness: RuntimeHarness, _ bundle: String, _ id: String) throws {
        try created(harness, bundle, id)
        let start = try harness.run(["start", id])
        guard start.status == 0 else { throw Fixtures.FixtureError("start \(id): \(start.stderr)") }
    }

    @Test func killedCreate() throws {
        let hit = try sweep("create", prepare: { _, _, _ in }, command: { ["create", "-b", $0, $1] },
                            argv: [Self.initArgv], bundleArgs: Self.initArgv)
        #expect(hit.keys.filter { $0.hasPrefix("creating") }.count >= 2, "the kills missed the middle of create: \(hit)")
    }

    @Test func killedStart() throws {
        let hit = try sweep("start", prepare: Self.created, command: { ["start", $1] },
                            argv: [Self.initArgv], bundleArgs: Self.initArgv)
        #expect(hit.count >= 2, "the kills missed the middle of start: \(hit)")
    }

    @Test func killedExec() throws {
        let hit = try sweep("exec", prepare: Self.running, command: { ["exec", "-d", $1] + Self.execArgv },
                            argv: [Self.initArgv, Self.execArgv], bundleArgs: Self.initArgv)
        #expect(hit.count >= 2, "the kills missed the middle of exec: \(hit)")
    }

    @Test func killedDelete() throws {
        let hit = try sweep("delete", prepare: { harness, bundle, id in
            try Self.running(harness, bundle, id)
            let exec = try harness.run(["exec", "-d", id] + Self.execArgv)
            guard exec.status == 0 else { throw Fixtures.FixtureError("exec \(id): \(exec.stderr)") }
        }, command: { ["delete", "--force", $1] }, argv: [Self.initArgv, Self.execArgv], bundleArgs: Self.initArgv)
        #expect(hit.count >= 2, "the kills missed the middle of delete: \(hit)")
    }
}
