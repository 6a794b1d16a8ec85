import Devices
import Machine

/// `PUT /vsock` and the config file's `vsock`: the hybrid vsock device.
struct VsockSection {
    var vsock: VsockConfig

    init(_ json: JSONValue, path: String) throws {
        let object = try StrictObject(json, path: path, allowed: ["guest_cid", "uds_path", "vsock_id"])
        let cid = try object.int(required: "guest_cid", in: 3...Int64(UInt32.max - 1))
        let uds = try object.nonEmptyString(required: "uds_path")
        _ = try object.string("vsock_id")  // deprecated in Firecracker, accepted and ignored
        guard uds.utf8.count < 100 else { throw ApiError("\(object.name("uds_path")): longer than a Unix socket path may be (107 bytes, with the _PORT suffix)") }
        vsock = VsockConfig(guestCid: UInt64(cid), udsPath: uds)
    }

    static func describe(_ config: VmConfig) -> JSONValue {
        guard let v = config.vsock else { return .null }
        return .object(["guest_cid": .int(Int64(v.guestCid)), "uds_path": .string(v.udsPath)])
    }
}

/// `PUT /entropy` and the config file's `entropy`: a virtio-rng device.
struct EntropySection {
    var rateLimiter: RateLimiterConfig

    init(_ json: JSONValue, path: String) throws {
        let object = try StrictObject(json, path: path, allowed: ["rate_limiter"])
        rateLimiter = try RateLimiterBody.parse(object, key: "rate_limiter")
    }

    func apply(to config: inout VmConfig) {
        config.rng = true
        config.rngRateLimiter = rateLimiter
    }

    static func describe(_ config: VmConfig) -> JSONValue {
        config.rng ? .object(["rate_limiter": RateLimiterBody.describe(config.rngRateLimiter)]) : .null
    }
}

/// `PUT /logger` and the config file's `logger`: where the VMM log goes, at which level.
struct LoggerSection {
    var log: VmConfig.LogConfig

    init(_ json: JSONValue, path: String) throws {
        let object = try StrictObject(json, path: path, allowed: ["log_path", "level", "show_level", "show_log_origin", "module"])
        var log = VmConfig.LogConfig()
        if let module = try object.string("module") {
            if let error = VmConfig.LogConfig.moduleError(module) { throw ApiError("\(object.name("module")): \(error)") }
            log.module = module
        }
        log.path = try object.string("log_path")
        if log.path?.isEmpty == true { throw ApiError("\(object.name("log_path")): must not be empty") }
        if let level = try object.string("level") {
            guard let parsed = VmConfig.LogConfig.Level.allCases.first(where: { $0.rawValue.lowercased() == level.lowercased() }) else {
                throw ApiError("\(object.name("level")): '\(level)' is not one of Error, Warning, Info, Debug, Trace, Off")
            }
            log.level = parsed
        }
        log.showLevel = try object.bool("show_level") ?? false
        log.showOrigin = try object.bool("show_log_origin") ?? false
        self.log = log
    }

    static func describe(_ config: VmConfig) -> JSONValue {
        guard let log = config.logger else { return .null }
        var object: [String: JSONValue] = ["level": .string(log.level.rawValue), "show_level": .bool(log.showLevel),
                                           "show_log_origin": .bool(log.showOrigin)]
        object["log_path"] = log.path.map { .string($0) } ?? .null
        object["module"] = log.module.map { .string($0) } ?? .null
        return .object(object)
    }
}

/// `PUT /metrics` and the config file's `metrics`: the metrics file or named pipe.
struct MetricsSection {
    var path: String

    init(_ json: JSONValue, path: String) throws {
        let object = try StrictObject(json, path: path, allowed: ["metrics_path"])
        self.path = try object.nonEmptyString(required: "metrics_path")
    }

    static func describe(_ config: VmConfig) -> JSONValue {
        config.metricsPath.map { .object(["metrics_path": .string($0)]) } ?? .null
    }
}

/// `PUT /serial` (pre-boot) and the config file's `serial` (Firecracker's SerialDevice): where the guest's console goes,
/// stdout without a `serial_out_path`. `max_bytes` is kata-swift's: the cap on the file
/// before it is rotated to `<path>.1` (0: no cap), as `--serial-max-bytes`.
struct SerialSection {
    var output: VmConfig.SerialOutput
    var maxBytes: Int?

    init(_ json: JSONValue, path: String) throws {
        let object = try StrictObject(json, path: path, allowed: ["serial_out_path", "rate_limiter", "max_bytes"])
        // max_bytes caps the file instead.
        try object.noRateLimiter("rate_limiter", because: "the serial console has no rate limiter (max_bytes caps its file)")
        if object.has("serial_out_path") {
            output = .file(try object.nonEmptyString(required: "serial_out_path"))
        } else {
            output = .stdio
        }
        maxBytes = try object.int("max_bytes", in: 0...(1 << 40)).map(Int.init)
    }

    func apply(to config: inout VmConfig) {
        config.serial = output
        if let maxBytes { config.serialLogMaxBytes = maxBytes }
    }
}
