import Devices

/// One virtio-net interface, as `--net tap=NAME[,mac=MAC][,id=ID]` describes it.
public struct NetConfig: Sendable, Equatable {
    public var tap: String
    /// nil: a random locally administered address.
    public var mac: [UInt8]?
    public var id: String?

    public init(tap: String, mac: [UInt8]? = nil, id: String? = nil) {
        self.tap = tap
        self.mac = mac
        self.id = id
    }

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    public static func parse(_ text: String) throws -> NetConfig {
        var config = NetConfig(tap: "")
        var tap: String?
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ParseError(description: "invalid --net '\(text)': '\(item)' is not key=value")
            }
            let value = String(parts[1])
            switch parts[0] {
            case "tap":
                guard !value.isEmpty, value.utf8.count < 16 else {
                    throw ParseError(description: "invalid --net '\(text)': tap name must be 1 to 15 characters")
                }
                tap = value
            case "mac":
                guard let mac = parseMac(value) else {
                    throw ParseError(description: "invalid --net '\(text)': mac must look like 02:00:00:00:00:01")
                }
                guard mac[0] & 1 == 0 else {
                    throw ParseError(description: "invalid --net '\(text)': \(value) is a multicast address")
                }
                config.mac = mac
            case "id":
                guard !value.isEmpty else { throw ParseError(description: "invalid --net '\(text)': empty id") }
                config.id = value
            default:
                throw ParseError(description: "invalid --net '\(text)': unknown key '\(parts[0])' (tap, mac, id)")
            }
        }
        guard let tap else { throw ParseError(description: "invalid --net '\(text)': tap= is required") }
        config.tap = tap
        return config
    }

    static func parseMac(_ text: String) -> [UInt8]? {
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
