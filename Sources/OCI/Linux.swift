/// `linux`: namespaces, id mappings, devices, cgroup placement and limits, masked paths.
public struct LinuxFields: Codable, Sendable, Equatable {
    public var namespaces: [Spec.Namespace]?
    public var uidMappings: [Spec.IdMapping]?
    public var gidMappings: [Spec.IdMapping]?
    public var devices: [Spec.Device]?
    public var cgroupsPath: String?
    public var resources: Spec.Resources?
    public var sysctl: [String: String]?
    public var maskedPaths: [String]?
    public var readonlyPaths: [String]?
    public var rootfsPropagation: String?
    public var mountLabel: String?

    public init() {}
}

public struct NamespaceFields: Codable, Sendable, Equatable {
    public var type: String
    public var path: String?

    public init(type: String, path: String? = nil) {
        self.type = type
        self.path = path
    }
}

public struct IdMappingFields: Codable, Sendable, Equatable {
    public var containerID: UInt32
    public var hostID: UInt32
    public var size: UInt32
}

public struct DeviceFields: Codable, Sendable, Equatable {
    public var type: String
    public var path: String
    public var major: Int64?
    public var minor: Int64?
    public var fileMode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?

    public init(type: String, path: String, major: Int64? = nil, minor: Int64? = nil, fileMode: UInt32? = nil,
                uid: UInt32? = nil, gid: UInt32? = nil) {
        self.type = type
        self.path = path
        self.major = major
        self.minor = minor
        self.fileMode = fileMode
        self.uid = uid
        self.gid = gid
    }
}

/// `linux.resources`, also the object `update --resources` reads and UpdateContainer carries.
public struct ResourcesFields: Codable, Sendable, Equatable {
    public var memory: Spec.Memory?
    public var cpu: Spec.CPU?
    public var pids: Spec.Pids?

    public init(memory: Spec.Memory? = nil, cpu: Spec.CPU? = nil, pids: Spec.Pids? = nil) {
        self.memory = memory
        self.cpu = cpu
        self.pids = pids
    }
}

public struct MemoryFields: Codable, Sendable, Equatable {
    public var limit: Int64?
    public var reservation: Int64?
    public var swap: Int64?

    public init(limit: Int64?) { self.limit = limit }
}

public struct CPUFields: Codable, Sendable, Equatable {
    public var shares: UInt64?
    public var quota: Int64?
    public var period: UInt64?
    public var cpus: String?
    public var mems: String?

    public init(quota: Int64?, period: UInt64?) {
        self.quota = quota
        self.period = period
    }
}

public struct PidsFields: Codable, Sendable, Equatable {
    public var limit: Int64

    public init(limit: Int64) { self.limit = limit }
}
