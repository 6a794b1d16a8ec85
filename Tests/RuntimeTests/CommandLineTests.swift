import Foundation
import OCI
import Runtime
import TestSupport
import Testing

/// The command line as containerd's runc shim, podman/conmon and docker call it (the argv
/// recorded in shared/real-clients/README.md): both flag spellings, global flags before
/// the subcommand, numeric signals, runc's error output and exit codes.
@Suite struct CommandLineTests {
    @Test func globalFlagsInEveryPositionAndSpelling() throws {
        let harness = try RuntimeHarness()
        let log = harness.directory + "/log.json"
        // containerd: --root R --log L --log-format json <cmd>
        var result = try Command.run(RuntimeHarness.binary, ["--root", harness.root, "--log", log, "--log-format", "json", "state", "nope"])
        #expect(result.status == 1)
        #expect(result.stderr == "container nope does not exist\n")
        let line = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").last.map(String.init) ?? ""
        let entry = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(entry["level"] == "error" && entry["msg"] == "container nope does not exist" && entry["time"] != nil)
        // podman: --log-format=json --log <path> create ...
        result = try Command.run(RuntimeHarness.binary, ["--log-format=json", "--log", log, "--root=\(harness.root)",
                                                         "create", "--bundle", "/nonexistent", "--pid-file", harness.directory + "/pid", "c1"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("bundle /nonexistent: not a directory"), "\(result.stderr)")
        // --systemd-cgroup and --debug are accepted.
        result = try Command.run(RuntimeHarness.binary, ["--root", harness.root, "--debug", "--systemd-cgroup", "list", "-q"])
        #expect(result.status == 0 && result.stdout == "", "\(result.stderr)")
        // Without --log, the error is one text log line on stderr.
        result = try Command.run(RuntimeHarness.binary, ["--root", harness.root, "start", "nope"])
        #expect(result.status == 1 && result.stderr.contains("level=error msg=\"container nope does not exist\""), "\(result.stderr)")
        result = try Command.run(RuntimeHarness.binary, ["--root", harness.root, "--log-format", "xml", "list"])
        #expect(result.status != 0 && result.stderr.contains("invalid log format"))
    }

    @Test func callersArgvShapesParse() throws {
        let harness = try RuntimeHarness()
        let id = "missing"
        let notExist = "container \(id) does not exist"
        let shapes: [[String]] = [
            ["exec", "--process", "/tmp/runc-process1", "--detach", "--pid-file", harness.directory + "/e.pid", id],
            ["exec", "--pid-file", "/x/exec_pid", "--process", "/x/exec-process-1", "--detach", id],
            ["ps", "--format", "json", id],
            ["kill", id, "9"], ["kill", id, "15"], ["kill", id, "KILL"], ["kill", id, "SIGTERM"], ["kill", "--all", id, "9"],
            ["delete", id], ["start", id], ["state", id],
            ["exec", "-t", id, "sh", "-c", "echo hi"],
        ]
        for shape in shapes {
            let result = try harness.run(shape)
            #expect(result.status == 1, "\(shape): \(result.stderr)")
            #expect(result.stderr.contains(notExist), "\(shape): \(result.stderr)")
        }
        let badSignal = try harness.run(["kill", id, "BOGUS"])
        #expect(badSignal.status == 1 && badSignal.stderr.contains("unknown signal"))
        // delete --force of a missing container succeeds, as with runc (callers clean up with it).
        for force in [["delete", "--force", id], ["delete", "-f", id]] {
            let result = try harness.run(force)
            #expect(result.status == 0, "\(result.stderr)")
        }
        let usage = try harness.run(["create"])
        #expect(usage.status != 0 && usage.status != 1 || usage.stderr.contains("Missing expected argument"))
    }

    @Test func informationCommands() throws {
        let harness = try RuntimeHarness()
        var result = try harness.run(["list", "--format", "json"])
        #expect(result.status == 0 && result.stdout == "[]\n", "\(result.stderr)")
        result = try harness.run(["list"])
        #expect(result.status == 0 && result.stdout.hasPrefix("ID"))
        result = try harness.run(["features"])
        let features = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(features["ociVersionMax"] as? String == Spec.version)
        #expect((features["hooks"] as? [String])?.contains("createRuntime") == true)
        result = try harness.run(["version"])
        #expect(result.status == 0 && result.stdout.contains("kata-runtime version") && result.stdout.contains("spec: 1.0.2"))
        result = try Command.run(RuntimeHarness.binary, ["--version"])
        #expect(result.stdout.contains("kata-runtime version"))
        let bundle = harness.directory + "/spec-bundle"
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
        result = try harness.run(["spec", "-b", bundle])
        #expect(result.status == 0, "\(result.stderr)")
        let spec = try JSONDecoder().decode(Spec.self, from: Data(contentsOf: URL(fileURLWithPath: bundle + "/config.json")))
        #expect(spec == DefaultSpec.make())
        result = try harness.run(["spec", "-b", bundle])
        #expect(result.status == 1 && result.stderr.contains("exists"))
    }

    @Test func envPrintsTheConfigurationAndChecksTheHost() throws {
        let harness = try RuntimeHarness(config: "[hypervisor.kata]\nkernel = \"/nonexistent/vmlinux\"\ndefault_memory = 512\n")
        var result = try harness.run(["env"])
        #expect(result.status == 1)  // the kernel is missing
        #expect(result.stdout.contains("hypervisor.kata.default_memory = 512"))
        #expect(result.stdout.contains("FAIL kernel: /nonexistent/vmlinux"))
        #expect(result.stdout.contains("kvm"))
        result = try harness.run(["check"])
        #expect(result.status == 1 && result.stdout.contains("FAIL kernel"))
        // A Kata key we do not implement is a warning, a bad value of one we do an error.
        let kata = try RuntimeHarness(config: "[hypervisor.firecracker]\njailer_path = \"/opt/kata/bin/jailer\"\nkernel = \"/nonexistent/vmlinux\"\n")
        result = try kata.run(["env"])
        #expect(result.stdout.contains("# warning: \(kata.configPath): hypervisor.firecracker.jailer_path: not implemented by kata-swift; ignored"),
                "\(result.stdout)")
        #expect(result.stdout.contains("FAIL kernel: /nonexistent/vmlinux"))
        let bad = try RuntimeHarness(config: "[hypervisor.firecracker]\ndefault_memory = \"512M\"\n")
        result = try bad.run(["env"])
        #expect(result.status == 1 && result.stderr.contains("hypervisor.firecracker.default_memory: expected an integer"), "\(result.stderr)")
    }

    @Test func aFailedCreateLeavesNothingBehind() throws {
        // An agent that never answers: the monitor gives up after dial_timeout.
        let harness = try RuntimeHarness(config: "[agent.kata]\ndial_timeout = 1\ndebug_agent_socket = \"/run/kata-swift-no-such-agent.sock\"\n"
                                             + "[factory]\nenable_template = true\n")
        let bundle = try harness.makeBundle(["true"])
        let pidFile = harness.directory + "/pid"
        let result = try harness.run(["create", "--bundle", bundle, "--pid-file", pidFile, "c1"])
        #expect(result.status == 1)
        // create names what the file set that this runtime does not do.
        #expect(result.stderr.contains("level=warning msg=\"\(harness.configPath): factory.enable_template: not implemented by kata-swift; ignored\""),
                "\(result.stderr)")
        #expect(result.stderr.contains("starting the sandbox") && result.stderr.contains("did not answer"), "\(result.stderr)")
        #expect(harness.leftovers("c1").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: pidFile))
        let state = try harness.run(["state", "c1"])
        #expect(state.status == 1)
        // Terminal without a console socket is refused up front.
        let tty = try harness.makeBundle(["sh"], terminal: true)
        let refused = try harness.run(["create", "--bundle", tty, "c2"])
        #expect(refused.status == 1 && refused.stderr.contains("console socket"), "\(refused.stderr)")
        #expect(harness.leftovers("c2").isEmpty)
    }
}
