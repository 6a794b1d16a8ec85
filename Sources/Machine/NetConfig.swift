import Devices

/// One virtio-net interface, as `--net tap=NAME[,mac=MAC][,id=ID]` describes it.
public struct NetConfig: Sendable, Equatable {
    public var tap: String
    /// nil: a random locally administered address.
    public var mac: [UInt8]?
    public var id: String?
    /// MTU offered to the guest; nil: 1500.
    public var mtu: UInt16?
    /// Firecracker's `rx_rate_limiter` and `tx_rate_limiter`; changed live through PATCH.
    public var rxRateLimiter: RateLimiterConfig = .unlimited
    public var txRateLimiter: RateLimiterConfig = .unlimited

    public init(tap: String, mac: [UInt8]? = nil, id: String? = nil, mtu: UInt16? = nil) {
        self.tap = tap
        self.mac = mac
        self.id = id
        self.mtu = mtu
    }

    public typealias ParseError = OptionList.Error

    public static func parse(_ text: String) throws -> NetConfig {
        let options = try OptionList(flag: "--net", text: text)
        var config = NetConfig(tap: "")
        var tap: String?
        for (key, value) in options.pairs {
            switch key {
            case "tap":
                guard !value.isEmpty, value.utf8.count < 16 else { throw options.error("tap name must be 1 to 15 characters") }
                tap = value
            case "mac":
                guard let mac = parseMac(value) else { throw options.error("mac must look like 02:00:00:00:00:01") }
                guard mac[0] & 1 == 0 else { throw options.error("\(value) is a multicast address") }
                config.mac = mac
            case "id":
                guard !value.isEmpty else { throw options.error("empty id") }
                config.id = value
            default:
                throw options.unknownKey(key, known: ["tap", "mac", "id"])
            }
        }
        guard let tap else { throw options.error("tap= is required") }
        config.tap = tap
        return config
    }

    public static func parseMac(_ text: String) -> [UInt8]? {
        let octets = text.split(separator: ":", omittingEmptySubsequences: false)
        guard octets.count == 6 else { return nil }
        var mac: [UInt8] = []
        for octet in octets {
            guard octet.count == 2, let byte = UInt8(octet, radix: 16) else { return nil }
            mac.append(byte)
        }
        return mac
    }
}
