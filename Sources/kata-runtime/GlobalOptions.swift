import ArgumentParser
import Foundation
import Runtime

/// The global flags runc has (`--root`, `--log`, `--log-format`, `--debug`,
/// `--systemd-cgroup`, ...) plus the runtime's `--config`. Callers put them before the
/// subcommand; `GlobalArgumentOrder` moves them after it so every subcommand parses them.
struct GlobalOptions: ParsableArguments {
    @Option(help: "Root directory for container state.")
    var root: String = StateStore.defaultRoot

    @Option(help: "Log file (default: stderr).")
    var log: String?

    @Option(name: .customLong("log-format"), help: "Log format: text or json.")
    var logFormat: String = "text"

    @Flag(help: "Debug logging.")
    var debug = false

    @Flag(name: .customLong("systemd-cgroup"), help: "Accepted for compatibility (cgroups are the guest's).")
    var systemdCgroup = false

    @Option(help: "Path to configuration.toml (default: $KATA_CONF_FILE, then /etc/kata-containers/configuration.toml, then /usr/share/defaults/kata-containers/configuration.toml).")
    var config: String?

    @Option(help: .hidden) var criu: String?
    @Flag(help: .hidden) var rootless = false

    func validate() throws {
        guard logFormat == "text" || logFormat == "json" else {
            throw ValidationError("invalid log format '\(logFormat)': use text or json")
        }
    }

    /// The same globals for a re-executed runtime (monitor, shims).
    var forwarded: [String] {
        var arguments = ["--root", root, "--log-format", logFormat]
        if let log { arguments += ["--log", log] }
        if let config { arguments += ["--config", config] }
        if debug { arguments.append("--debug") }
        return arguments
    }
}

/// Moves global flags found before the subcommand name to just after it.
enum GlobalArgumentOrder {
    static let valued: Set<String> = ["--root", "--log", "--log-format", "--config", "--criu"]
    static let flags: Set<String> = ["--debug", "--systemd-cgroup", "--rootless"]

    static func normalize(_ arguments: [String]) -> [String] {
        var globals: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            if argument.contains("="), valued.contains(name) || name == "--rootless" {
                globals.append(argument)
                index += 1
            } else if valued.contains(argument), index + 1 < arguments.count {
                globals += [argument, arguments[index + 1]]
                index += 2
            } else if flags.contains(argument) {
                globals.append(argument)
                index += 1
            } else {
                break
            }
        }
        guard index < arguments.count else { return globals.isEmpty ? arguments : globals }
        let subcommand = arguments[index]
        if subcommand.hasPrefix("-") { return arguments }  // --help, --version
        // --rootless takes an optional value in runc; normalise to a flag.
        let cleaned = globals.map { $0.hasPrefix("--rootless=") ? "--rootless" : $0 }
        return [subcommand] + cleaned + arguments[(index + 1)...]
    }
}
