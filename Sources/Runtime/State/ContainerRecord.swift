import Foundation

/// What the runtime remembers about one container between invocations (`state.json` in the
/// container's directory under `--root`): the OCI state fields plus the sandbox's own:
/// where its files and sockets are, and which processes (by pid and start time, so that a
/// recycled pid is never mistaken for ours) are the monitor and the container's processes.
public struct ContainerRecord: Codable, Sendable, Equatable {
    public static let formatVersion = 1

    public var version = ContainerRecord.formatVersion
    public var id: String
    public var bundle: String
    public var rootfs: String
    public var created: String
    /// The status last written: `creating` until create finished, `created`, `running`
    /// after start, `stopped` once the exit is recorded. The effective status also looks at
    /// whether the processes are still alive (see `StateStore.effectiveStatus`).
    public var status: OCIState.Status
    public var annotations: [String: String]?
    /// The container's state directory (state.json, config.json, rootfs image, logs).
    public var stateDir: String
    /// Where the sockets are (short: Unix socket paths are limited to 108 bytes).
    public var socketDir: String
    /// The sandbox monitor (hosts the VM, stays until delete). A pod member records its
    /// sandbox's, whose VM it runs in: it is stopped when that VM is gone.
    public var monitor: ProcessIdentity?
    /// A pod member: the sandbox container whose VM, agent and share it uses, and the
    /// names it bound in that share (its rootfs, its volumes), which its delete unbinds.
    public var sandboxId: String?
    public var sandboxBinds: [String]?
    /// The container's init process as the caller sees it: the process shim that relays
    /// stdio and exits with the container's exit status.
    public var initProcess: ProcessIdentity?
    /// The shims of `exec`ed processes, by exec id.
    public var execProcesses: [String: ProcessIdentity] = [:]
    /// The agent's socket: the VM's hybrid vsock socket (CONNECT to the agent's vsock
    /// port) or, with `debug_agent_socket`, a kata-agent listening on the host.
    public var agentSocket: String = ""
    public var agentViaHybridVsock = true
    /// The exit status once known (128+N for a signal).
    public var exitStatus: Int32?
    /// Taps the runtime created in the container's network namespace.
    public var taps: [String] = []
    public var networkNamespace: String?
    /// The virtiofsd serving the sandbox's share (`sharedDirectoryPath`, which delete
    /// always unmounts, whether or not a share was made).
    public var virtiofsd: ProcessIdentity?
    /// The daemon's executable, which its stop matches when its group has lost its leader.
    public var virtiofsdExecutable: String?
    /// How the rootfs reaches the guest (nil in records older than virtio-fs: the disk).
    public var rootfsDelivery: RootfsDelivery?

    public init(id: String, bundle: String, rootfs: String, stateDir: String, socketDir: String,
                annotations: [String: String]?) {
        self.id = id
        self.bundle = bundle
        self.rootfs = rootfs
        self.created = Timestamp.now()
        self.status = .creating
        self.annotations = annotations
        self.stateDir = stateDir
        self.socketDir = socketDir
    }
}

/// A process named by pid and its start time (field 22 of /proc/PID/stat, in clock ticks
/// since boot): a pid alone can be reused after the process dies.
public struct ProcessIdentity: Codable, Sendable, Equatable {
    public var pid: Int32
    public var startTime: UInt64

    public init(pid: Int32, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    /// The identity of a running process, or nil if it does not exist.
    public static func of(_ pid: Int32) -> ProcessIdentity? {
        guard let start = startTime(of: pid) else { return nil }
        return ProcessIdentity(pid: pid, startTime: start)
    }

    /// True while this very process exists (and is not a zombie).
    public var isAlive: Bool {
        guard let start = Self.startTime(of: pid), start == startTime else { return false }
        return Self.state(of: pid) != "Z"
    }

    static func statFields(of pid: Int32) -> [Substring]? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat"),
              let text = String(data: data, encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // Fields after the command name (which may contain spaces and parentheses).
        return text[text.index(after: close)...].split(separator: " ")
    }

    static func startTime(of pid: Int32) -> UInt64? {
        guard let fields = statFields(of: pid), fields.count > 19 else { return nil }
        return UInt64(fields[19])  // field 22 overall; fields[0] is field 3 (state)
    }

    static func state(of pid: Int32) -> String? {
        statFields(of: pid).flatMap { $0.first.map(String.init) }
    }
}
