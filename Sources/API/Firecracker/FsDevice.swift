import Machine

/// `PUT /fs/{fs_id}` (pre-boot) and the config file's `fs[]`: a virtio-fs device served by a
/// vhost-user backend. Our extension: Firecracker has no virtio-fs, so the fields are Cloud
/// Hypervisor's `FsConfig` (tag, socket, num_queues, queue_size) with an id as drives have.
/// The values are judged by `FsConfig.problem`, as for `--fs`.
struct FsDevice {
    static let fields = ["fs_id", "tag", "socket", "num_queues", "queue_size"]
    var fs: FsConfig

    init(_ json: JSONValue, path: String, pathId: String?) throws {
        let object = try StrictObject(json, path: path, allowed: Self.fields)
        let id = try ResourceId.required("fs_id", in: object, pathId: pathId)
        var fs = FsConfig(tag: try object.string(required: "tag"), socketPath: try object.string(required: "socket"), id: id)
        // Only what the types can hold is checked here; the rules are FsConfig's.
        if let queues = try object.int("num_queues", in: 0...Int64(Int32.max)) { fs.requestQueues = Int(queues) }
        if let size = try object.int("queue_size", in: 0...Int64(UInt16.max)) { fs.queueSize = UInt16(size) }
        if let problem = fs.problem { throw ApiError(path.isEmpty ? problem : "\(path): \(problem)") }
        self.fs = fs
    }

    /// Adds the device or replaces the one with the same id.
    func apply(to config: inout VmConfig) {
        if let index = config.fsIds.firstIndex(of: fs.id ?? "") {
            config.fs[index] = fs
        } else {
            config.fs.append(fs)
        }
    }

    static func describe(_ fs: FsConfig, id: String) -> JSONValue {
        .object(["fs_id": .string(id), "tag": .string(fs.tag), "socket": .string(fs.socketPath),
                 "num_queues": .int(Int64(fs.requestQueues)), "queue_size": .int(Int64(fs.queueSize))])
    }
}
