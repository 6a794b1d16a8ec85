import Foundation

/// Turns the bundle's `config.json` into the spec the guest agent runs: the rootfs path
/// becomes where the agent mounts the rootfs disk, hooks are dropped (they run on the host),
/// the network namespace path is dropped (the VM is the container's network namespace),
/// and bind mounts of host files (resolv.conf, hosts, hostname, .containerenv) become
/// files copied into the guest. Bind mounts of host directories cannot reach the guest
/// before the shared-filesystem work: they are dropped, with a warning.
public struct GuestSpec {
    /// A host file the agent receives with CopyFile before the container is created.
    public struct CopiedFile: Equatable {
        public var hostPath: String
        public var guestPath: String
    }

    public var json: Data
    public var copiedFiles: [CopiedFile]
    /// Character devices every guest has, which a bind may name as they are.
    static let guestDevices: Set<String> = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"]
    public var warnings: [String]

    /// Guest directory where copied host files land, per container.
    public static func sharedDirectory(containerId: String) -> String { "/run/kata-containers/shared/\(containerId)" }
    /// Where the agent mounts the rootfs disk.
    public static func rootfsMountPoint(containerId: String) -> String { "/run/kata-containers/\(containerId)/rootfs" }

    /// `guestRoot`: the path the spec's root.path becomes. `rewriteMounts`: false when the
    /// agent runs on this very host (its debug socket), where host paths are valid.
    public init(configData: Data, containerId: String, guestRoot: String, rewriteMounts: Bool) throws {
        guard var spec = try JSONSerialization.jsonObject(with: configData) as? [String: Any] else {
            throw RuntimeError("config.json: the top level is not an object")
        }
        var root = spec["root"] as? [String: Any] ?? [:]
        root["path"] = guestRoot
        spec["root"] = root
        spec.removeValue(forKey: "hooks")
        if let process = spec["process"] as? [String: Any] { spec["process"] = Self.raisableAmbientOnly(process) }
        var copied: [CopiedFile] = []
        var warnings: [String] = []
        if var linux = spec["linux"] as? [String: Any] {
            if let namespaces = linux["namespaces"] as? [[String: Any]] {
                linux["namespaces"] = namespaces.map { namespace -> [String: Any] in
                    guard rewriteMounts, namespace["type"] as? String == "network" else { return namespace }
                    return ["type": "network"]
                }.filter { !rewriteMounts || ($0["type"] as? String) != "network" }
            }
            spec["linux"] = linux
        }
        if rewriteMounts, let mounts = spec["mounts"] as? [[String: Any]] {
            var kept: [[String: Any]] = []
            for var mount in mounts {
                let options = mount["options"] as? [String] ?? []
                let isBind = (mount["type"] as? String) == "bind" || options.contains("bind") || options.contains("rbind")
                guard isBind, let source = mount["source"] as? String, let destination = mount["destination"] as? String else {
                    kept.append(mount)
                    continue
                }
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else {
                    warnings.append("bind mount \(source) -> \(destination): the source does not exist; dropped")
                    continue
                }
                if isDirectory.boolValue {
                    warnings.append("bind mount of the host directory \(source) -> \(destination) dropped: directories need a shared filesystem (virtio-fs)")
                    continue
                }
                var info = stat()
                if stat(source, &info) == 0, info.st_mode & S_IFMT != S_IFREG {
                    // A device or FIFO is never read into the guest. The guest has its own
                    // memory devices: a bind of one of those names the guest's.
                    if info.st_mode & S_IFMT == S_IFCHR, Self.guestDevices.contains(source) {
                        kept.append(mount)
                    } else {
                        warnings.append("bind mount of \(source) -> \(destination) dropped: only regular files and the guest's own /dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom can be bound")
                    }
                    continue
                }
                let guestPath = Self.sharedDirectory(containerId: containerId) + "/\(copied.count)-" + (source as NSString).lastPathComponent
                copied.append(CopiedFile(hostPath: source, guestPath: guestPath))
                mount["source"] = guestPath
                kept.append(mount)
            }
            spec["mounts"] = kept
        }
        json = try JSONSerialization.data(withJSONObject: spec, options: [.sortedKeys])
        copiedFiles = copied
        self.warnings = warnings
    }

    /// Ambient capabilities the kernel can raise are those also inheritable and permitted;
    /// runc skips the others (`runc spec` since 1.1.2 lists ambient capabilities and no
    /// inheritable ones), so the guest gets only the raisable ones.
    static func raisableAmbientOnly(_ process: [String: Any]) -> [String: Any] {
        guard var capabilities = process["capabilities"] as? [String: Any],
              let ambient = capabilities["ambient"] as? [String], !ambient.isEmpty else { return process }
        let inheritable = Set(capabilities["inheritable"] as? [String] ?? [])
        let permitted = Set(capabilities["permitted"] as? [String] ?? [])
        capabilities["ambient"] = ambient.filter { inheritable.contains($0) && permitted.contains($0) }
        var result = process
        result["capabilities"] = capabilities
        return result
    }

    /// An `exec` process object (JSON) with the same treatment.
    public static func guestProcess(_ data: Data) throws -> Data {
        guard let process = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw RuntimeError("the process is not a JSON object")
        }
        return try JSONSerialization.data(withJSONObject: raisableAmbientOnly(process), options: [.sortedKeys])
    }
}
