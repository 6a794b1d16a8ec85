import Devices
import Machine

/// `PUT /balloon` (pre-boot) and the config file's `balloon`: a virtio-balloon device.
/// Firecracker's fields: `amount_mib` and `deflate_on_oom` required,
/// `stats_polling_interval_s` (0: no statistics), `free_page_hinting`, `free_page_reporting`.
struct BalloonSection {
    static let fields = ["amount_mib", "deflate_on_oom", "stats_polling_interval_s", "free_page_hinting", "free_page_reporting"]
    var config: VirtioBalloon.Config

    init(_ json: JSONValue, path: String) throws {
        let object = try StrictObject(json, path: path, allowed: Self.fields)
        let amount = try object.int(required: "amount_mib", in: 0...Int64(UInt32.max))
        let deflate = try object.bool(required: "deflate_on_oom")
        var config = VirtioBalloon.Config(amountMiB: UInt32(amount), deflateOnOom: deflate)
        config.statsPollingIntervalS = UInt32(try object.int("stats_polling_interval_s", in: 0...Int64(UInt16.max)) ?? 0)
        config.freePageReporting = try object.bool("free_page_reporting") ?? false
        config.freePageHinting = try object.bool("free_page_hinting") ?? false
        self.config = config
    }

    static func describe(_ balloon: VirtioBalloon.Config?) -> JSONValue {
        guard let b = balloon else { return .null }
        return .object(["amount_mib": .int(Int64(b.amountMiB)), "deflate_on_oom": .bool(b.deflateOnOom),
                        "stats_polling_interval_s": .int(Int64(b.statsPollingIntervalS)),
                        "free_page_hinting": .bool(b.freePageHinting), "free_page_reporting": .bool(b.freePageReporting)])
    }

    /// `PATCH /balloon`'s `{"amount_mib"}`.
    static func amount(_ json: JSONValue) throws -> UInt32 {
        let object = try StrictObject(json, path: "", allowed: ["amount_mib"])
        return UInt32(try object.int(required: "amount_mib", in: 0...Int64(UInt32.max)))
    }

    /// `PATCH /balloon/hinting/start`'s `{"acknowledge_on_stop"}` (the body may be empty):
    /// whether a STOP from the guest is answered with DONE at once (default true).
    static func acknowledgeOnStop(_ json: JSONValue) throws -> Bool {
        if json == .null { return true }
        let object = try StrictObject(json, path: "", allowed: ["acknowledge_on_stop"])
        return try object.bool("acknowledge_on_stop") ?? true
    }

    /// GET /balloon/hinting/status: the host's last command and the guest's.
    static func describe(_ status: VirtioBalloon.HintingStatus) -> JSONValue {
        .object(["host_cmd": .int(Int64(status.hostCommand)), "guest_cmd": status.guestCommand.map { .int(Int64($0)) } ?? .null])
    }

    /// `PATCH /balloon/statistics`'s `{"stats_polling_interval_s"}`.
    static func pollingInterval(_ json: JSONValue) throws -> UInt32 {
        let object = try StrictObject(json, path: "", allowed: ["stats_polling_interval_s"])
        return UInt32(try object.int(required: "stats_polling_interval_s", in: 0...Int64(UInt16.max)))
    }

    /// GET /balloon/statistics: Firecracker's `BalloonStats`, with the guest's figures
    /// under their names (those the guest has not sent are left out).
    static func describe(_ stats: VirtioBalloon.Statistics) -> JSONValue {
        let pagesPerMiB = UInt32(1 << 20 / VirtioBalloon.pageSize)
        var object: [String: JSONValue] = [
            "target_pages": .int(Int64(stats.targetPages)), "actual_pages": .int(Int64(stats.actualPages)),
            "target_mib": .int(Int64(stats.targetPages / pagesPerMiB)), "actual_mib": .int(Int64(stats.actualPages / pagesPerMiB)),
        ]
        for (tag, name) in statisticNames.enumerated() {
            if let value = stats.values[UInt16(tag)] { object[name] = .int(Int64(clamping: value)) }
        }
        return .object(object)
    }

    /// VIRTIO_BALLOON_S_* tags 0-15, by Firecracker's field names.
    static let statisticNames = ["swap_in", "swap_out", "major_faults", "minor_faults", "free_memory", "total_memory",
                                 "available_memory", "disk_caches", "hugetlb_allocations", "hugetlb_failures", "oom_kill",
                                 "alloc_stall", "async_scan", "direct_scan", "async_reclaim", "direct_reclaim"]
}
