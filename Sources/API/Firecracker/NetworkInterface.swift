import Devices
import Machine

/// `PUT /network-interfaces/{id}` (pre-boot) and the config file's `network-interfaces[]`:
/// a virtio-net device on a host tap.
struct NetworkInterface {
    static let fields = ["iface_id", "host_dev_name", "guest_mac", "mtu", "rx_rate_limiter", "tx_rate_limiter"]
    var net: NetConfig

    init(_ json: JSONValue, path: String, pathId: String?) throws {
        let object = try StrictObject(json, path: path, allowed: Self.fields)
        let id = try ResourceId.required("iface_id", in: object, pathId: pathId)
        let tap = try object.nonEmptyString(required: "host_dev_name")
        guard tap.utf8.count < 16 else { throw ApiError("\(object.name("host_dev_name")): tap names are at most 15 bytes") }
        var net = NetConfig(tap: tap, id: id)
        net.rxRateLimiter = try RateLimiterBody.parse(object, key: "rx_rate_limiter")
        net.txRateLimiter = try RateLimiterBody.parse(object, key: "tx_rate_limiter")
        if let mac = try object.string("guest_mac") {
            guard let bytes = NetConfig.parseMac(mac), bytes[0] & 1 == 0 else {
                throw ApiError("\(object.name("guest_mac")): '\(mac)' is not a unicast MAC like 06:00:AC:10:00:02")
            }
            net.mac = bytes
        }
        net.mtu = try object.int("mtu", in: 68...65535).map { UInt16($0) }
        self.net = net
    }

    func apply(to config: inout VmConfig) throws {
        if let other = config.nets.first(where: { $0.tap == net.tap && $0.id != net.id }) {
            throw ApiError("host_dev_name: the tap '\(net.tap)' is already used by '\(other.id ?? "")'")
        }
        if let index = config.nets.firstIndex(where: { $0.id == net.id }) {
            config.nets[index] = net
        } else {
            config.nets.append(net)
        }
    }

    static func describe(_ net: NetConfig) -> JSONValue {
        var object: [String: JSONValue] = ["iface_id": .string(net.id ?? net.tap), "host_dev_name": .string(net.tap),
                                           "rx_rate_limiter": RateLimiterBody.describe(net.rxRateLimiter),
                                           "tx_rate_limiter": RateLimiterBody.describe(net.txRateLimiter)]
        object["guest_mac"] = net.mac.map { .string($0.map { String(format2: $0) }.joined(separator: ":")) } ?? .null
        object["mtu"] = net.mtu.map { .int(Int64($0)) } ?? .null
        return .object(object)
    }
}

/// `PATCH /network-interfaces/{id}` (post-boot): in Firecracker it only updates rate
/// limiters; an empty one (Kata's driver's `{}`) changes nothing.
struct PartialNetworkInterface {
    var id: String
    var rxRateLimiter: RateLimiterUpdate?
    var txRateLimiter: RateLimiterUpdate?

    init(_ json: JSONValue, pathId: String) throws {
        let object = try StrictObject(json, path: "", allowed: ["iface_id", "rx_rate_limiter", "tx_rate_limiter"])
        id = try object.string(required: "iface_id")
        try ResourceId.match(path: pathId, body: id, field: "iface_id")
        rxRateLimiter = try RateLimiterBody.update(object, key: "rx_rate_limiter")
        txRateLimiter = try RateLimiterBody.update(object, key: "tx_rate_limiter")
    }
}

extension String {
    /// Two lowercase hex digits.
    init(format2 byte: UInt8) {
        let hex = String(byte, radix: 16)
        self = hex.count == 1 ? "0" + hex : hex
    }
}
