import Foundation

/// Drives the built `kata-runtime` as callers do: a private `--root`, a configuration
/// file, and bundles made from busybox-static.
public struct RuntimeHarness {
    public let root: String
    public let configPath: String
    public let directory: String

    public static var binary: String {
        let candidate = Fixtures.productsDirectory.appendingPathComponent("kata-runtime")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
        return Fixtures.packageRoot.appendingPathComponent(".build/debug/kata-runtime").path
    }

    public static var agentBinary: String {
        let candidate = Fixtures.productsDirectory.appendingPathComponent("kata-agent")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
        return Fixtures.packageRoot.appendingPathComponent(".build/debug/kata-agent").path
    }

    public init(config: String = "") throws {
        directory = Fixtures.scratch.appendingPathComponent("rt-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        root = directory + "/root"
        configPath = directory + "/configuration.toml"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// `kata-runtime --root R --config C <arguments>`.
    public func run(_ arguments: [String], stdin: String? = nil, timeout: Double = 120) throws -> Command.Result {
        try Command.run(Self.binary, ["--root", root, "--config", configPath] + arguments, stdin: stdin, timeout: timeout)
    }

    /// A bundle: busybox-static as the rootfs, `kata-runtime spec`'s config with `args`.
    public func makeBundle(_ args: [String], terminal: Bool = false, edit: (inout [String: Any]) -> Void = { _ in }) throws -> String {
        let bundle = directory + "/bundle-\(UUID().uuidString.prefix(6))"
        let bin = bundle + "/rootfs/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        for dir in ["proc", "sys", "dev", "tmp", "etc", "root"] {
            try FileManager.default.createDirectory(atPath: bundle + "/rootfs/" + dir, withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: bin + "/busybox")
        for applet in ["sh", "echo", "cat", "sleep", "true", "false", "ls", "ps", "hostname", "id", "tty", "wc", "head", "env", "pwd", "stty"] {
            try FileManager.default.createSymbolicLink(atPath: bin + "/" + applet, withDestinationPath: "busybox")
        }
        try "root:x:0:0:root:/root:/bin/sh\n".write(toFile: bundle + "/rootfs/etc/passwd", atomically: true, encoding: .utf8)
        try "root:x:0:\n".write(toFile: bundle + "/rootfs/etc/group", atomically: true, encoding: .utf8)
        let spec = try Command.run(Self.binary, ["spec", "--bundle", bundle])
        guard spec.status == 0 else { throw Fixtures.FixtureError("kata-runtime spec failed: \(spec.stderr)") }
        let path = bundle + "/config.json"
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any] ?? [:]
        var process = object["process"] as? [String: Any] ?? [:]
        process["args"] = args
        process["terminal"] = terminal
        object["process"] = process
        edit(&object)
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
        return bundle
    }

    public static func processExists(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        return !stat.contains(") Z ")
    }
}
