import Devices
import Machine

/// `PUT /drives/{id}` (pre-boot) and the config file's `drives[]`: a virtio-blk disk.
/// The drive id is the disk's virtio serial, so at most 20 bytes here.
struct Drive {
    static let fields = ["drive_id", "path_on_host", "is_root_device", "is_read_only", "partuuid", "cache_type",
                         "rate_limiter", "io_engine", "socket"]
    var disk: DiskConfig

    init(_ json: JSONValue, path: String, pathId: String?) throws {
        let object = try StrictObject(json, path: path, allowed: Self.fields)
        let id = try object.string(required: "drive_id")
        try ResourceId.check(id, field: object.name("drive_id"))
        guard id.utf8.count <= DiskConfig.maxIdLength else {
            throw ApiError("\(object.name("drive_id")): at most \(DiskConfig.maxIdLength) bytes (it is the disk's virtio serial)")
        }
        try ResourceId.match(path: pathId, body: id, field: object.name("drive_id"))
        let isRoot = try object.bool(required: "is_root_device")
        try object.refuse("socket", because: "vhost-user-block is not supported")
        let file = try object.nonEmptyString(required: "path_on_host")
        var disk = DiskConfig(path: file, readOnly: try object.bool("is_read_only") ?? false, id: id)
        disk.isRootDevice = isRoot
        disk.partuuid = try object.string("partuuid")
        disk.rateLimiter = try RateLimiterBody.parse(object, key: "rate_limiter")
        if let cache = try object.choice("cache_type", DiskConfig.CacheType.allCases.map(\.rawValue)) {
            disk.cacheType = DiskConfig.CacheType(rawValue: cache) ?? .unsafe
        }
        if let engine = try object.choice("io_engine", ["Sync", "Async"]) { disk.engine = engine == "Async" ? .aio : .sync }
        // Firecracker opens the file when the drive is configured: a bad path fails here.
        do {
            try DiskConfig.checkCanBackDisk(path: file, readOnly: disk.readOnly)
        } catch {
            throw ApiError("\(object.name("path_on_host")): \(error)")
        }
        self.disk = disk
    }

    /// Adds the disk or replaces the one with the same id; the root disk goes first (vda).
    func apply(to config: inout VmConfig) {
        if let index = config.disks.firstIndex(where: { $0.id == disk.id }) {
            config.disks[index] = disk
        } else {
            config.disks.append(disk)
        }
        if disk.isRootDevice, let index = config.disks.firstIndex(where: { $0.id == disk.id }), index != 0 {
            config.disks.insert(config.disks.remove(at: index), at: 0)
        }
    }

    static func describe(_ disk: DiskConfig, id: String) -> JSONValue {
        var object: [String: JSONValue] = [
            "drive_id": .string(id), "path_on_host": .string(disk.path), "is_root_device": .bool(disk.isRootDevice),
            "is_read_only": .bool(disk.readOnly), "cache_type": .string(disk.cacheType.rawValue),
            "io_engine": .string(disk.engine == .aio ? "Async" : "Sync"), "rate_limiter": RateLimiterBody.describe(disk.rateLimiter),
        ]
        object["partuuid"] = disk.partuuid.map { .string($0) } ?? .null
        return .object(object)
    }
}

/// `PATCH /drives/{id}` (post-boot): a new backing file, a new rate limiter, or both.
struct PartialDrive {
    var id: String
    var pathOnHost: String?
    var rateLimiter: RateLimiterUpdate?

    init(_ json: JSONValue, pathId: String) throws {
        let object = try StrictObject(json, path: "", allowed: ["drive_id", "path_on_host", "rate_limiter"])
        id = try object.string(required: "drive_id")
        try ResourceId.match(path: pathId, body: id, field: "drive_id")
        rateLimiter = try RateLimiterBody.update(object, key: "rate_limiter")
        pathOnHost = try object.string("path_on_host")
        if pathOnHost?.isEmpty == true { throw ApiError("path_on_host: must not be empty") }
    }
}
