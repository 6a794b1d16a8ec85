/// The hybrid vsock device, as `--vsock cid=N,uds=PATH` describes it: the guest's CID and
/// the host Unix socket that host clients connect to (guest connections to host port P go
/// to `PATH_P`).
public struct VsockConfig: Sendable, Equatable {
    public var guestCid: UInt64
    public var udsPath: String

    public init(guestCid: UInt64, udsPath: String) {
        self.guestCid = guestCid
        self.udsPath = udsPath
    }

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    public static func parse(_ text: String) throws -> VsockConfig {
        var cid: UInt64?
        var uds: String?
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ParseError(description: "invalid --vsock '\(text)': '\(item)' is not key=value")
            }
            switch parts[0] {
            case "cid":
                guard let value = UInt64(parts[1]), value >= 3, value < UInt64(UInt32.max) else {
                    throw ParseError(description: "invalid --vsock '\(text)': cid must be a number from 3 to 4294967294")
                }
                cid = value
            case "uds", "uds_path":
                guard !parts[1].isEmpty, parts[1].utf8.count <= 100 else {
                    throw ParseError(description: "invalid --vsock '\(text)': uds must be a path of 1 to 100 bytes")
                }
                uds = String(parts[1])
            default:
                throw ParseError(description: "invalid --vsock '\(text)': unknown key '\(parts[0])' (cid, uds)")
            }
        }
        guard let cid else { throw ParseError(description: "invalid --vsock '\(text)': cid= is required") }
        guard let uds else { throw ParseError(description: "invalid --vsock '\(text)': uds= is required") }
        return VsockConfig(guestCid: cid, udsPath: uds)
    }
}
