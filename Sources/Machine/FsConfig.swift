/// A virtio-fs device whose queues a vhost-user backend (virtiofsd) serves, as
/// `--fs tag=TAG,socket=PATH[,queues=N,queue_size=N][,id=ID]` describes it; Cloud Hypervisor's
/// `FsConfig` (Firecracker has no virtio-fs).
public struct FsConfig: Sendable, Equatable {
    /// What the guest mounts: `mount -t virtiofs TAG /mnt`.
    public var tag: String
    /// The backend's vhost-user socket (virtiofsd's `--socket-path`).
    public var socketPath: String
    /// Request queues besides the hiprio queue.
    public var requestQueues: Int
    public var queueSize: UInt16
    /// The API's `fs_id`, which a second `PUT /fs/{fs_id}` replaces; nil: "fs<N>".
    public var id: String?

    /// virtio 1.2, 5.11.4: the tag is at most 36 bytes, NUL-padded.
    public static let maxTagBytes = 36
    public static let maxRequestQueues = 16
    public static let defaultQueueSize: UInt16 = 1024

    public init(tag: String, socketPath: String, requestQueues: Int = 1, queueSize: UInt16 = FsConfig.defaultQueueSize,
                id: String? = nil) {
        self.tag = tag
        self.socketPath = socketPath
        self.requestQueues = requestQueues
        self.queueSize = queueSize
        self.id = id
    }

    public typealias ParseError = OptionList.Error

    public static func parse(_ text: String) throws -> FsConfig {
        let options = try OptionList(flag: "--fs", text: text)
        var tag: String?
        var socket: String?
        var config = FsConfig(tag: "", socketPath: "")
        for (key, value) in options.pairs {
            switch key {
            case "tag": tag = value
            case "socket": socket = value
            case "queues", "num_queues":
                guard let n = Int(value) else { throw options.error("queues must be a number") }
                config.requestQueues = n
            case "queue_size":
                guard let n = UInt16(value) else { throw options.error("queue_size must be a number") }
                config.queueSize = n
            case "id":
                guard !value.isEmpty else { throw options.error("empty id") }
                config.id = value
            default:
                throw options.unknownKey(key, known: ["tag", "socket", "queues", "queue_size", "id"])
            }
        }
        guard let tag else { throw options.error("tag= is required") }
        guard let socket else { throw options.error("socket= is required") }
        config.tag = tag
        config.socketPath = socket
        if let problem = config.problem { throw options.error(problem) }
        return config
    }

    /// What is wrong with the values, if anything (the CLI, the config file and the API
    /// all judge them here).
    public var problem: String? {
        if tag.isEmpty || tag.utf8.count > Self.maxTagBytes || tag.utf8.contains(0) {
            return "tag must be 1 to \(Self.maxTagBytes) bytes without NUL"
        }
        if socketPath.isEmpty || socketPath.utf8.count > 107 { return "socket must be a path of 1 to 107 bytes" }
        if requestQueues < 1 || requestQueues > Self.maxRequestQueues {
            return "queues must be from 1 to \(Self.maxRequestQueues)"
        }
        if queueSize < 2 || queueSize > 32768 || queueSize & (queueSize - 1) != 0 {
            return "queue_size must be a power of two from 2 to 32768"
        }
        return nil
    }
}
