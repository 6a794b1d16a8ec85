import Foundation
import Glibc

/// Container start as a user sees it: `RUNTIME run` of a busybox `true` bundle, from exec to
/// the runtime's exit (the container ran and its exit status came back), beside runc on the
/// same bundle. Ours boots a microVM per container, runc makes namespaces: the ratio is the
/// price of VM isolation on this host.
public struct ContainerStartBenchmark {
    public struct Sample: Codable, Sendable {
        /// "kata-runtime" or "runc".
        public var runtime: String
        public var wallMs: Double
        public var exitStatus: Int32
    }

    public var runtimes: [(name: String, argv: [String])]
    public var bundle: String
    public var stateRoot: String
    public var timeout: Double

    /// `kataRuntime` with `--config kataConfig` if given; runc only if present.
    public init(kataRuntime: String, kataConfig: String?, runc: String?, workDirectory: String, timeout: Double) {
        var kata = [kataRuntime]
        if let kataConfig { kata += ["--config", kataConfig] }
        runtimes = [("kata-runtime", kata)]
        if let runc { runtimes.append(("runc", [runc])) }
        bundle = "\(workDirectory)/bundle"
        stateRoot = "\(workDirectory)/state"
        self.timeout = timeout
    }

    /// A bundle whose process is busybox `true`: the rootfs from busybox-static, the spec
    /// from `kata-runtime spec` with args and terminal changed.
    public func makeBundle(busybox: String = "/bin/busybox") throws {
        let rootfs = "\(bundle)/rootfs"
        let fm = FileManager.default
        try? fm.removeItem(atPath: bundle)
        for dir in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
            try fm.createDirectory(atPath: "\(rootfs)/\(dir)", withIntermediateDirectories: true)
        }
        try fm.copyItem(atPath: busybox, toPath: "\(rootfs)/bin/busybox")
        for applet in ["sh", "true", "echo"] { try fm.createSymbolicLink(atPath: "\(rootfs)/bin/\(applet)", withDestinationPath: "busybox") }
        let spec = try MeasuredProcess(runtimes[0].argv[0], ["spec", "--bundle", bundle])
        let outcome = spec.finish(timeout: 30)
        guard outcome.exitStatus == 0, let data = fm.contents(atPath: "\(bundle)/config.json"),
              var config = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              var process = config["process"] as? [String: Any] else {
            throw BenchError("'\(runtimes[0].argv[0]) spec' did not write a usable config.json: \(outcome.lines.map(\.text).joined(separator: " "))")
        }
        process["args"] = ["/bin/true"]
        process["terminal"] = false
        config["process"] = process
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: "\(bundle)/config.json"))
    }

    public func sample(_ index: Int, runtime: (name: String, argv: [String])) throws -> Sample {
        let id = "kata-bench-\(getpid())-\(runtime.name)-\(index)"
        let root = "\(stateRoot)/\(runtime.name)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let base = Array(runtime.argv.dropFirst()) + ["--root", root]
        let start = ContinuousClock.now
        let process = try MeasuredProcess(runtime.argv[0], base + ["run", "--bundle", bundle, id])
        let outcome = process.finish(timeout: timeout)
        let wall = CreationRateBenchmark.milliseconds(ContinuousClock.now - start)
        // Whatever run left behind (it deletes on exit; a failed run may not).
        _ = (try? MeasuredProcess(runtime.argv[0], base + ["delete", "--force", id]))?.finish(timeout: 60)
        return Sample(runtime: runtime.name, wallMs: wall, exitStatus: outcome.exitStatus)
    }
}
