import Devices

/// One virtio-blk disk, as `--disk path=PATH[,readonly=on][,id=ID][,engine=sync|aio][,direct=on]`
/// describes it.
public struct DiskConfig: Sendable, Equatable {
    public var path: String
    public var readOnly = false
    /// Serial number the guest reads with GET_ID (and sees in /sys/block/vdX/serial); at
    /// most 20 bytes. Defaults to "disk<N>".
    public var id: String?
    public var engine: BlockEngine = .sync
    public var direct = false
    /// The kernel's root file system (`root=` on its command line); must be the first disk.
    public var isRootDevice = false
    /// The root partition's PARTUUID, for `root=PARTUUID=` instead of `root=/dev/vda`.
    public var partuuid: String?
    /// Firecracker's cache_type: what the guest was promised about flushes. Both kinds
    /// advertise VIRTIO_BLK_F_FLUSH here and honour it with fdatasync (Writeback).
    public var cacheType: CacheType = .unsafe
    /// Firecracker's `rate_limiter`; changed live through PATCH /drives.
    public var rateLimiter: RateLimiterConfig = .unlimited

    public enum CacheType: String, Sendable, CaseIterable { case unsafe = "Unsafe", writeback = "Writeback" }

    public init(path: String, readOnly: Bool = false, id: String? = nil, engine: BlockEngine = .sync, direct: Bool = false) {
        self.path = path
        self.readOnly = readOnly
        self.id = id
        self.engine = engine
        self.direct = direct
    }

    public typealias ParseError = OptionList.Error

    /// Longest id: it is the disk's virtio serial.
    public static let maxIdLength = VirtioBlock.idLength

    /// Opens `path` as the device would (buffered) and closes it again: a host that takes
    /// disks before the VM exists (the API's pre-boot `PUT /drives`) reports a bad file at
    /// once, with the same error the VM would give.
    public static func checkCanBackDisk(path: String, readOnly: Bool) throws {
        _ = try BlockBackend(path: path, readOnly: readOnly, direct: false)
    }

    /// Parses the `--disk` syntax; every mistake is named.
    public static func parse(_ text: String) throws -> DiskConfig {
        let options = try OptionList(flag: "--disk", text: text)
        var path: String?
        var config = DiskConfig(path: "")
        for (key, value) in options.pairs {
            switch key {
            case "path":
                guard !value.isEmpty else { throw options.error("empty path") }
                path = value
            case "readonly", "ro": config.readOnly = try options.flag(key, value)
            case "direct": config.direct = try options.flag(key, value)
            case "id":
                guard !value.isEmpty, value.utf8.count <= Self.maxIdLength else {
                    throw options.error("id must be 1 to \(Self.maxIdLength) bytes")
                }
                config.id = value
            case "engine":
                guard let engine = BlockEngine(rawValue: value) else {
                    throw options.error("engine must be sync or aio, not '\(value)'")
                }
                config.engine = engine
            default:
                throw options.unknownKey(key, known: ["path", "readonly", "id", "engine", "direct"])
            }
        }
        guard let path else { throw options.error("path= is required") }
        config.path = path
        return config
    }
}
