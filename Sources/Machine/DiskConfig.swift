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

    public init(path: String, readOnly: Bool = false, id: String? = nil, engine: BlockEngine = .sync, direct: Bool = false) {
        self.path = path
        self.readOnly = readOnly
        self.id = id
        self.engine = engine
        self.direct = direct
    }

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// Parses the `--disk` syntax; every mistake is named.
    public static func parse(_ text: String) throws -> DiskConfig {
        var path: String?
        var config = DiskConfig(path: "")
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ParseError(description: "invalid --disk '\(text)': '\(item)' is not key=value")
            }
            let key = String(parts[0]), value = String(parts[1])
            func flag() throws -> Bool {
                switch value {
                case "on", "true", "yes": return true
                case "off", "false", "no": return false
                default: throw ParseError(description: "invalid --disk '\(text)': \(key) must be on or off, not '\(value)'")
                }
            }
            switch key {
            case "path":
                guard !value.isEmpty else { throw ParseError(description: "invalid --disk '\(text)': empty path") }
                path = value
            case "readonly", "ro": config.readOnly = try flag()
            case "direct": config.direct = try flag()
            case "id":
                guard !value.isEmpty, value.utf8.count <= VirtioBlock.idLength else {
                    throw ParseError(description: "invalid --disk '\(text)': id must be 1 to \(VirtioBlock.idLength) bytes")
                }
                config.id = value
            case "engine":
                guard let engine = BlockEngine(rawValue: value) else {
                    throw ParseError(description: "invalid --disk '\(text)': engine must be sync or aio, not '\(value)'")
                }
                config.engine = engine
            default:
                throw ParseError(description: "invalid --disk '\(text)': unknown key '\(key)' (path, readonly, id, engine, direct)")
            }
        }
        guard let path else { throw ParseError(description: "invalid --disk '\(text)': path= is required") }
        config.path = path
        return config
    }
}
