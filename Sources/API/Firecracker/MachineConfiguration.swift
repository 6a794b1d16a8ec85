import Machine

/// `GET|PUT|PATCH /machine-config` and the config file's `machine-config`. PUT resets what
/// it omits to the defaults (1 vCPU, 128 MiB, no SMT, no huge pages); PATCH changes only
/// what it names. `smt` gives each core two threads; `huge_pages: "2M"` backs guest RAM
/// with the host's hugetlb pool, `"Transparent"` asks for transparent huge pages. CPU
/// templates and dirty-page tracking are refused when asked for.
struct MachineConfiguration {
    static let fields = ["vcpu_count", "mem_size_mib", "smt", "cpu_template", "track_dirty_pages", "huge_pages"]
    var vcpuCount: Int?
    var memoryMiB: Int?
    /// huge_pages; nil when not given.
    var hugePages: String?
    var smt: Bool?
    var trackDirtyPages: Bool?

    init(_ json: JSONValue, path: String, partial: Bool) throws {
        let object = try StrictObject(json, path: path, allowed: Self.fields)
        let vcpuRange: ClosedRange<Int64> = 1...Int64(VmConfig.maxVcpus)
        let memoryRange: ClosedRange<Int64> = Int64(VmConfig.minMemoryMiB)...Int64(VmConfig.maxMemoryMiB)
        if partial {
            vcpuCount = try object.int("vcpu_count", in: vcpuRange).map(Int.init)
            memoryMiB = try object.int("mem_size_mib", in: memoryRange).map(Int.init)
        } else {
            vcpuCount = Int(try object.int(required: "vcpu_count", in: vcpuRange))
            memoryMiB = Int(try object.int(required: "mem_size_mib", in: memoryRange))
        }
        smt = try object.bool("smt")
        trackDirtyPages = try object.bool("track_dirty_pages")
        if let template = try object.choice("cpu_template", ["C3", "T2", "T2S", "T2CL", "T2A", "V1N1", "None"]), template != "None" {
            throw ApiError("\(object.name("cpu_template")): CPU templates are not supported (only None)")
        }
        hugePages = try object.choice("huge_pages", ["None", "Transparent", "2M"])
        if hugePages == "2M", let memoryMiB, memoryMiB % 2 != 0 {
            throw ApiError("\(object.name("mem_size_mib")): \(memoryMiB) is not a whole number of 2 MiB huge pages")
        }
    }

    func apply(to config: inout VmConfig, partial: Bool) {
        if let vcpuCount { config.vcpuCount = vcpuCount } else if !partial { config.vcpuCount = 1 }
        if let memoryMiB { config.memoryMiB = memoryMiB } else if !partial { config.memoryMiB = 128 }
        if let hugePages {
            config.hugePages = hugePages == "2M"
            config.transparentHugePages = hugePages == "Transparent"
        } else if !partial {
            config.hugePages = false
            config.transparentHugePages = false
        }
        if let smt { config.smt = smt } else if !partial { config.smt = false }
        if let trackDirtyPages { config.trackDirtyPages = trackDirtyPages } else if !partial { config.trackDirtyPages = false }
    }

    static func describe(_ config: VmConfig) -> JSONValue {
        .object(["vcpu_count": .int(Int64(config.vcpuCount)), "mem_size_mib": .int(Int64(config.memoryMiB)),
                 "smt": .bool(config.smt), "track_dirty_pages": .bool(config.trackDirtyPages),
                 "huge_pages": .string(config.hugePages ? "2M" : config.transparentHugePages ? "Transparent" : "None")])
    }
}
