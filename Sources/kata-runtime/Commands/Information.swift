import ArgumentParser
import Foundation
import Glibc
import Runtime
import OCI
import LinuxSupport

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the containers under --root.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short, .long], help: "table or json.") var format: String = "table"
    @Flag(name: [.short, .long], help: "Only the ids.") var quiet = false

    func run() throws {
        let invocation = Invocation(global)
        try invocation.perform {
            guard format == "table" || format == "json" else { throw RuntimeError("invalid format option") }
            let store = StateStore(root: global.root)
            let states = store.list().compactMap { try? store.load($0) }.map(StateStore.ociState)
            if quiet {
                states.forEach { printLine($0.id) }
            } else if format == "json" {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                printJSON(try encoder.encode(states))
            } else {
                printLine(Self.pad(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]))
                for state in states {
                    printLine(Self.pad([state.id, String(state.pid), state.status.rawValue, state.bundle, state.created, "root"]))
                }
            }
        }
    }

    static func pad(_ columns: [String]) -> String {
        let widths = [12, 10, 10, 40, 32, 8]
        return zip(columns, widths).map { $0.0.padding(toLength: max($0.1, $0.0.count + 1), withPad: " ", startingAt: 0) }
            .joined().trimmingCharacters(in: .whitespaces)
    }
}

struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print what this runtime supports, as JSON (runc features format).")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let features: [String: Any] = [
            "ociVersionMin": "1.0.0",
            "ociVersionMax": Spec.version,
            "hooks": HookKind.allCases.map(\.rawValue),
            "mountOptions": ["bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec", "relatime", "strictatime", "mode", "size"],
            "linux": [
                "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "uts"],
                "capabilities": [] as [String],
                "cgroup": ["v1": false, "v2": true, "systemd": false, "systemdUser": false],
            ] as [String: Any],
            "annotations": ["io.katacontainers.runtime": "kata-swift"],
        ]
        printJSON(try JSONSerialization.data(withJSONObject: features, options: [.prettyPrinted, .sortedKeys]))
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the runtime's version.")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        printLine("kata-runtime version \(KataRuntime.version)\nspec: \(Spec.version)")
    }
}

struct SpecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "spec", abstract: "Write a default config.json for a bundle.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short, .long]) var bundle: String = "."

    func run() throws {
        try Invocation(global).perform {
            let path = bundle + "/config.json"
            if FileManager.default.fileExists(atPath: path) { throw RuntimeError("File \(path) exists. Remove it first") }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try AtomicFile.write(try encoder.encode(DefaultSpec.make()), to: path, mode: 0o644)
        }
    }
}

/// `env` (Kata's name) and `check`: the effective configuration and what the host offers.
struct Env: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the effective configuration and check the host.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print as JSON.") var json = false

    func run() throws { try Self.report(global: global, json: json) }

    static func report(global: GlobalOptions, json: Bool) throws {
        let invocation = Invocation(global)
        var failed = false
        try invocation.perform {
            let config = try RuntimeConfiguration.load(explicitPath: global.config)
            let report = HostCheck.run(config: config)
            failed = report.contains { !$0.ok }
            if json {
                let object: [String: Any] = [
                    "configuration": config.summary,
                    "warnings": config.warnings,
                    "checks": report.map { ["name": $0.name, "ok": $0.ok, "detail": $0.detail] },
                ]
                printJSON(try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]))
            } else {
                printLine("# configuration: \(config.source)")
                for warning in config.warnings { printLine("# warning: \(warning)") }
                for (key, value) in config.summary.sorted(by: { $0.key < $1.key }) { printLine("\(key) = \(value)") }
                printLine("")
                for check in report { printLine("\(check.ok ? "ok  " : "FAIL") \(check.name): \(check.detail)") }
            }
        }
        if failed { throw ExitCode(1) }
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that this host can run sandboxes (same as env).")
    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print as JSON.") var json = false

    func run() throws { try Env.report(global: global, json: json) }
}
