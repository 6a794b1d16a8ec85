/// `process`: the container's first process, and the object `exec --process` reads.
public struct ProcessFields: Codable, Sendable, Equatable {
    public var terminal: Bool?
    public var consoleSize: Spec.ConsoleSize?
    public var user: Spec.User
    public var args: [String]?
    public var commandLine: String?
    public var env: [String]?
    public var cwd: String
    public var capabilities: Spec.Capabilities?
    public var rlimits: [Spec.Rlimit]?
    public var noNewPrivileges: Bool?
    public var apparmorProfile: String?
    public var oomScoreAdj: Int?
    public var selinuxLabel: String?

    public init(terminal: Bool = false, user: Spec.User = Spec.User(.init(uid: 0, gid: 0)), args: [String], env: [String] = [],
                cwd: String = "/") {
        self.terminal = terminal
        self.user = user
        self.args = args
        self.env = env
        self.cwd = cwd
    }
}

public struct ConsoleSizeFields: Codable, Sendable, Equatable {
    public var height: UInt32
    public var width: UInt32

    public init(height: UInt32, width: UInt32) {
        self.height = height
        self.width = width
    }
}

public struct UserFields: Codable, Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var umask: UInt32?
    public var additionalGids: [UInt32]?
    public var username: String?

    public init(uid: UInt32, gid: UInt32, additionalGids: [UInt32]? = nil) {
        self.uid = uid
        self.gid = gid
        self.additionalGids = additionalGids
    }
}

public struct CapabilitiesFields: Codable, Sendable, Equatable {
    public var bounding: [String]?
    public var effective: [String]?
    public var inheritable: [String]?
    public var permitted: [String]?
    public var ambient: [String]?

    public init(bounding: [String]?, effective: [String]?, inheritable: [String]?, permitted: [String]?, ambient: [String]?) {
        self.bounding = bounding
        self.effective = effective
        self.inheritable = inheritable
        self.permitted = permitted
        self.ambient = ambient
    }
}

public struct RlimitFields: Codable, Sendable, Equatable {
    public var type: String
    public var hard: UInt64
    public var soft: UInt64

    public init(type: String, hard: UInt64, soft: UInt64) {
        self.type = type
        self.hard = hard
        self.soft = soft
    }
}
