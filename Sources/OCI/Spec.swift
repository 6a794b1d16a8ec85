/// The OCI runtime-spec `config.json` (version 1.x): one model for the runtime on the host
/// and the agent in the guest. Members it does not declare are kept (`OCIObject`).
public typealias Spec = OCIObject<SpecFields>

public struct SpecFields: Codable, Sendable, Equatable {
    public var ociVersion: String
    public var process: Spec.Process?
    public var root: Spec.Root?
    public var hostname: String?
    public var domainname: String?
    public var mounts: [Spec.Mount]?
    public var hooks: Spec.Hooks?
    public var annotations: [String: String]?
    public var linux: Spec.Linux?

    public init(ociVersion: String = Spec.version, process: Spec.Process? = nil, root: Spec.Root? = nil, hostname: String? = nil,
                mounts: [Spec.Mount]? = nil, linux: Spec.Linux? = nil) {
        self.ociVersion = ociVersion
        self.process = process
        self.root = root
        self.hostname = hostname
        self.mounts = mounts
        self.linux = linux
    }
}

extension OCIObject where Fields == SpecFields {
    public typealias Process = OCIObject<ProcessFields>
    public typealias ConsoleSize = OCIObject<ConsoleSizeFields>
    public typealias User = OCIObject<UserFields>
    public typealias Capabilities = OCIObject<CapabilitiesFields>
    public typealias Rlimit = OCIObject<RlimitFields>
    public typealias Root = OCIObject<RootFields>
    public typealias Mount = OCIObject<MountFields>
    public typealias Hooks = OCIObject<HooksFields>
    public typealias Hook = OCIObject<HookFields>
    public typealias Linux = OCIObject<LinuxFields>
    public typealias Namespace = OCIObject<NamespaceFields>
    public typealias IdMapping = OCIObject<IdMappingFields>
    public typealias Device = OCIObject<DeviceFields>
    public typealias Resources = OCIObject<ResourcesFields>
    public typealias Memory = OCIObject<MemoryFields>
    public typealias CPU = OCIObject<CPUFields>
    public typealias Pids = OCIObject<PidsFields>

    /// The runtime-spec version this model implements (what `state` reports).
    public static var version: String { "1.0.2" }
}

public struct RootFields: Codable, Sendable, Equatable {
    public var path: String
    public var readonly: Bool?

    public init(path: String, readonly: Bool? = nil) {
        self.path = path
        self.readonly = readonly
    }
}

public struct MountFields: Codable, Sendable, Equatable {
    public var destination: String
    public var source: String?
    public var type: String?
    public var options: [String]?

    public init(destination: String, type: String?, source: String?, options: [String]?) {
        self.destination = destination
        self.type = type
        self.source = source
        self.options = options
    }

    /// A bind mount, by type or by option, as runc reads it.
    public var isBind: Bool {
        type == "bind" || options?.contains("bind") == true || options?.contains("rbind") == true
    }
}

public struct HooksFields: Codable, Sendable, Equatable {
    public var prestart: [Spec.Hook]?
    public var createRuntime: [Spec.Hook]?
    public var createContainer: [Spec.Hook]?
    public var startContainer: [Spec.Hook]?
    public var poststart: [Spec.Hook]?
    public var poststop: [Spec.Hook]?

    public init() {}
}

public struct HookFields: Codable, Sendable, Equatable {
    public var path: String
    public var args: [String]?
    public var env: [String]?
    /// Seconds; a hook still running after it is killed and fails.
    public var timeout: Int?

    public init(path: String, args: [String]? = nil, env: [String]? = nil, timeout: Int? = nil) {
        self.path = path
        self.args = args
        self.env = env
        self.timeout = timeout
    }
}

extension OCIObject where Fields == SpecFields {
    /// The network namespace the caller prepared (`linux.namespaces[type=network].path`).
    public var networkNamespacePath: String? {
        fields.linux?.namespaces?.first { $0.type == "network" }?.path.flatMap { $0.isEmpty ? nil : $0 }
    }
}
