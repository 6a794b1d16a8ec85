import AgentProtocol
import Foundation
import OCI

/// Turns the bundle's `config.json` into the spec the guest agent runs: the rootfs path
/// becomes where the agent mounts the rootfs disk, hooks are dropped (they run on the host),
/// the network namespace path is dropped (the VM is the container's network namespace),
/// and bind mounts of host files (resolv.conf, hosts, hostname, .containerenv) become
/// files copied into the guest. Bind mounts of host directories reach the guest over the
/// sandbox's virtio-fs share (Kata's layout: bound on the host under the shared
/// directory, the guest binds them from the share's mount); without a shared filesystem
/// they are dropped, with a warning. Every member the model does not know reaches the
/// guest as the caller wrote it.
public struct GuestSpec {
    /// A host file the agent receives with CopyFile before the container is created.
    public struct CopiedFile: Equatable {
        public var hostPath: String
        public var guestPath: String
    }

    /// A host directory the runtime binds into the shared directory at `name`.
    public struct SharedVolume: Equatable {
        public var hostPath: String
        public var name: String
        public var readOnly: Bool
        public var recursive: Bool
    }

    public var spec: Spec
    public var copiedFiles: [CopiedFile]
    public var sharedVolumes: [SharedVolume]
    public var warnings: [String]

    /// The virtio-fs tag of a sandbox's share, and where the guest mounts it (Kata's).
    public static let sharedFsTag = "kataShared"
    public static let sharedFsGuestMount = "/run/kata-containers/shared/containers"
    /// Where a container's rootfs is in the share, when it reaches the guest that way.
    public static func sharedRootfsName(containerId: String) -> String { "\(containerId)/rootfs" }
    /// Character devices every guest has, which a bind may name as they are.
    static let guestDevices: Set<String> = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"]

    /// What CreateContainer carries.
    public var json: Data { get throws { try spec.encoded() } }

    /// Guest directory where copied host files land, per container.
    /// (Beside the share's mount, whatever the container's id.)
    public static func copiedFilesDirectory(containerId: String) -> String { "/run/kata-containers/copied/\(containerId)" }
    /// Where the agent mounts the rootfs disk.
    public static func rootfsMountPoint(containerId: String) -> String { "/run/kata-containers/\(containerId)/rootfs" }

    /// `guestRoot`: the path the spec's root.path becomes. `rewriteMounts`: false when the
    /// agent runs on this very host (its debug socket), where host paths are valid.
    /// `sharesDirectories`: the sandbox has a virtio-fs share for directory binds.
    public init(_ hostSpec: Spec, containerId: String, guestRoot: String, rewriteMounts: Bool, sharesDirectories: Bool = false) {
        var spec = hostSpec
        var root = spec.root ?? Spec.Root(.init(path: guestRoot))
        root.path = guestRoot
        spec.root = root
        spec.hooks = nil
        if let process = spec.process { spec.process = Self.raisableAmbientOnly(process) }
        if rewriteMounts {
            spec.linux?.namespaces?.removeAll { $0.type == "network" }
        }
        var copied: [CopiedFile] = []
        var shared: [SharedVolume] = []
        var warnings: [String] = []
        if rewriteMounts, let mounts = spec.mounts {
            var kept: [Spec.Mount] = []
            for var mount in mounts {
                guard mount.fields.isBind, let source = mount.source else {
                    kept.append(mount)
                    continue
                }
                let destination = mount.destination
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else {
                    warnings.append("bind mount \(source) -> \(destination): the source does not exist; dropped")
                    continue
                }
                if isDirectory.boolValue {
                    guard sharesDirectories else {
                        warnings.append("bind mount of the host directory \(source) -> \(destination) dropped: directories need a shared filesystem (shared_fs = \"virtio-fs\")")
                        continue
                    }
                    let options = mount.options ?? []
                    let volume = SharedVolume(hostPath: source, name: "\(containerId)/volume-\(shared.count)-" + (source as NSString).lastPathComponent,
                                              readOnly: options.contains("ro"), recursive: options.contains("rbind"))
                    shared.append(volume)
                    mount.source = Self.sharedFsGuestMount + "/" + volume.name
                    kept.append(mount)
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
                let guestPath = Self.copiedFilesDirectory(containerId: containerId) + "/\(copied.count)-" + (source as NSString).lastPathComponent
                copied.append(CopiedFile(hostPath: source, guestPath: guestPath))
                mount.source = guestPath
                kept.append(mount)
            }
            spec.mounts = kept
        }
        self.spec = spec
        copiedFiles = copied
        sharedVolumes = shared
        self.warnings = warnings
    }

    /// The namespaces taken from another container of the sandbox name it for the agent
    /// (`ContainerNamespaceReference`) instead of a host process.
    public mutating func joinSandboxNamespaces(_ shared: [NamespaceGuard.SharedNamespace]) {
        guard !shared.isEmpty, var namespaces = spec.linux?.namespaces else { return }
        for index in namespaces.indices {
            if let join = shared.first(where: { $0.type == namespaces[index].type }) {
                namespaces[index].path = ContainerNamespaceReference.path(container: join.container, type: join.type)
            }
        }
        spec.linux?.namespaces = namespaces
    }

    /// Ambient capabilities the kernel can raise are those also inheritable and permitted;
    /// runc skips the others (`runc spec` since 1.1.2 lists ambient capabilities and no
    /// inheritable ones), so the guest gets only the raisable ones.
    static func raisableAmbientOnly(_ process: Spec.Process) -> Spec.Process {
        guard var capabilities = process.capabilities, let ambient = capabilities.ambient, !ambient.isEmpty else { return process }
        let inheritable = Set(capabilities.inheritable ?? [])
        let permitted = Set(capabilities.permitted ?? [])
        capabilities.ambient = ambient.filter { inheritable.contains($0) && permitted.contains($0) }
        var result = process
        result.capabilities = capabilities
        return result
    }

    /// An `exec` process with the same treatment, as the JSON ExecProcess carries.
    public static func guestProcess(_ process: Spec.Process) throws -> Data {
        try raisableAmbientOnly(process).encoded()
    }
}
