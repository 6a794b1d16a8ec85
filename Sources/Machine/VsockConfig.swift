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

    public typealias ParseError = OptionList.Error

    public static func parse(_ text: String) throws -> VsockConfig {
        let options = try OptionList(flag: "--vsock", text: text)
        var cid: UInt64?
        var uds: String?
        for (key, value) in options.pairs {
            switch key {
            case "cid":
                guard let number = UInt64(value), number >= 3, number < UInt64(UInt32.max) else {
                    throw options.error("cid must be a number from 3 to 4294967294")
                }
                cid = number
            case "uds", "uds_path":
                guard !value.isEmpty, value.utf8.count <= 100 else { throw options.error("uds must be a path of 1 to 100 bytes") }
                uds = value
            default:
                throw options.unknownKey(key, known: ["cid", "uds"])
            }
        }
        guard let cid else { throw options.error("cid= is required") }
        guard let uds else { throw options.error("uds= is required") }
        return VsockConfig(guestCid: cid, udsPath: uds)
    }
}
