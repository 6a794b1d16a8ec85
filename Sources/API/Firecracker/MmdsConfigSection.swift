import Devices
import Machine

/// `PUT /mmds/config` and the config file's `mmds-config`: which interfaces reach the
/// metadata service, its address and version.
struct MmdsConfigSection {
    var config: MmdsConfig

    init(_ json: JSONValue, path: String) throws {
        let object = try StrictObject(json, path: path, allowed: ["network_interfaces", "ipv4_address", "version", "imds_compat"])
        guard let list = object.value("network_interfaces") else { throw object.missing("network_interfaces") }
        guard case .array(let items) = list else { throw object.wrongType("network_interfaces", "an array of interface ids", list) }
        var ids: [String] = []
        for (index, item) in items.enumerated() {
            guard case .string(let id) = item, !id.isEmpty else {
                throw ApiError("\(object.name("network_interfaces"))[\(index)]: expected a non-empty interface id, got \(item.typeName)")
            }
            if !ids.contains(id) { ids.append(id) }
        }
        var config = MmdsConfig(networkInterfaces: ids)
        if let version = try object.choice("version", ["V1", "V2"]) { config.version = MmdsConfig.Version(rawValue: version) ?? .v1 }
        if let address = try object.string("ipv4_address") {
            guard let parsed = MmdsConfig.parseAddress(address) else {
                throw ApiError("\(object.name("ipv4_address")): '\(address)' is not a link-local IPv4 address 169.254.1.0 to 169.254.254.255")
            }
            config.ipv4Address = parsed
        }
        config.imdsCompat = try object.bool("imds_compat") ?? false
        self.config = config
    }

    static func describe(_ config: MmdsConfig?) -> JSONValue {
        guard let config else { return .null }
        return .object(["network_interfaces": .array(config.networkInterfaces.map { .string($0) }),
                        "ipv4_address": .string(config.addressText), "version": .string(config.version.rawValue),
                        "imds_compat": .bool(config.imdsCompat)])
    }
}
