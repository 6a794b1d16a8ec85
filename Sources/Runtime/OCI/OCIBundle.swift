import Foundation
import HostInput
import OCI

/// An OCI bundle on disk: the directory, its `config.json` (parsed and as raw bytes), and
/// the resolved rootfs path. Loading checks what the runtime depends on, and every problem
/// is reported with the file and the field.
public struct OCIBundle: Sendable {
    public let path: String
    public let spec: Spec
    /// `config.json` exactly as the caller wrote it: the copy the container keeps, which
    /// `exec` and the poststop hooks read back.
    public let configData: Data
    /// The rootfs directory (or block device), absolute.
    public let rootfsPath: String

    /// Largest `config.json` accepted: a real one is a few KiB.
    public static let maxConfigSize = 4 << 20

    public struct LoadError: Error, CustomStringConvertible, Equatable {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    public init(path: String) throws {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let bundle = (absolute as NSString).standardizingPath
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: bundle, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw LoadError("bundle \(bundle): not a directory")
        }
        let configPath = bundle + "/config.json"
        let data: Data
        do { data = Data(try CheckedFile.read(configPath, role: "config.json", limit: Self.maxConfigSize)) } catch let error as HostInputError {
            if case .cannotOpen(_, _, ENOENT) = error { throw LoadError("\(configPath): no such file (a bundle needs config.json)") }
            throw LoadError("\(error)")
        }
        let spec = try Self.decode(data, file: configPath)
        try Self.validate(spec, file: configPath)
        guard let root = spec.root else { throw LoadError("\(configPath): root: missing (root.path is required)") }
        let rootfs = root.path.hasPrefix("/") ? root.path : bundle + "/" + root.path
        var rootIsDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: rootfs, isDirectory: &rootIsDirectory) else {
            throw LoadError("\(configPath): root.path \(rootfs) does not exist")
        }
        self.path = bundle
        self.spec = spec
        self.configData = data
        self.rootfsPath = (rootfs as NSString).standardizingPath
    }

    /// Decodes a `config.json`, translating JSONDecoder's errors into "field: problem".
    /// A duplicate key or a NUL in a string is refused too (`StrictJSON`).
    public static func decode(_ data: Data, file: String) throws -> Spec {
        try decode(Spec.self, from: data, file: file)
    }

    /// Decodes any OCI document the caller hands us (config.json, `exec --process`,
    /// `update --resources`) with the same checks and field-naming errors.
    public static func decode<Fields>(_ type: OCIObject<Fields>.Type, from data: Data, file: String) throws -> OCIObject<Fields> {
        do {
            let value = try OCIObject<Fields>.decode(data)
            try StrictJSON.check(data)
            return value
        } catch let error as OCIDecodingError {
            throw LoadError("\(file): \(error.field.map { "\($0): " } ?? "")\(error.problem)")
        } catch {
            throw LoadError("\(file): \(error)")
        }
    }

    /// The checks beyond types: what the runtime cannot run without.
    public static func validate(_ spec: Spec, file: String) throws {
        guard spec.ociVersion.hasPrefix("1.") else {
            throw LoadError("\(file): ociVersion: \(spec.ociVersion) is not a 1.x runtime-spec version")
        }
        if let process = spec.process {
            guard let args = process.args, !args.isEmpty else { throw LoadError("\(file): process.args: must not be empty") }
            guard process.cwd.hasPrefix("/") else { throw LoadError("\(file): process.cwd: must be an absolute path, not '\(process.cwd)'") }
            for variable in process.env ?? [] where !variable.contains("=") {
                throw LoadError("\(file): process.env: '\(variable)' is not NAME=VALUE")
            }
            _ = args
        }
        for (index, mount) in (spec.mounts ?? []).enumerated() where !mount.destination.hasPrefix("/") {
            throw LoadError("\(file): mounts[\(index)].destination: must be absolute, not '\(mount.destination)'")
        }
        let known: Set<String> = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"]
        for (index, namespace) in (spec.linux?.namespaces ?? []).enumerated() where !known.contains(namespace.type) {
            throw LoadError("\(file): linux.namespaces[\(index)].type: unknown namespace '\(namespace.type)'")
        }
        for (kind, hooks) in HookKind.allCases.map({ ($0, spec.hooks?.list(for: $0) ?? []) }) {
            for (index, hook) in hooks.enumerated() {
                guard hook.path.hasPrefix("/") else {
                    throw LoadError("\(file): hooks.\(kind.rawValue)[\(index)].path: must be absolute, not '\(hook.path)'")
                }
                if let timeout = hook.timeout, timeout <= 0 {
                    throw LoadError("\(file): hooks.\(kind.rawValue)[\(index)].timeout: must be positive")
                }
            }
        }
        if let cpu = spec.linux?.resources?.cpu, let quota = cpu.quota, quota > 0, cpu.period == 0 {
            throw LoadError("\(file): linux.resources.cpu.period: must be positive when a quota is set")
        }
    }
}
