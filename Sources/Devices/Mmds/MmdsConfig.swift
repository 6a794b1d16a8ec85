/// Firecracker's `/mmds/config`: which interfaces reach the metadata service, at which
/// address, and whether the guest needs a session token (V2) or not (V1).
public struct MmdsConfig: Sendable, Equatable {
    public enum Version: String, Sendable, Equatable {
        case v1 = "V1"
        case v2 = "V2"
    }

    public var version: Version
    /// Host byte order; Firecracker's default is 169.254.169.254.
    public var ipv4Address: UInt32
    /// The `iface_id`s of the network interfaces whose guest traffic to `ipv4Address` the
    /// service answers instead of the tap.
    public var networkInterfaces: [String]
    /// Firecracker's `imds_compat`: answers are always in IMDS form (text), even to a
    /// client that accepts JSON, as EC2's IMDS answers.
    public var imdsCompat: Bool

    public static let defaultAddress: UInt32 = 0xA9FE_A9FE

    public init(version: Version = .v1, ipv4Address: UInt32 = Self.defaultAddress, networkInterfaces: [String],
                imdsCompat: Bool = false) {
        self.version = version
        self.ipv4Address = ipv4Address
        self.networkInterfaces = networkInterfaces
        self.imdsCompat = imdsCompat
    }

    /// Dotted quad, as the API shows it.
    public var addressText: String {
        (0..<4).map { String((ipv4Address >> (24 - 8 * $0)) & 0xFF) }.joined(separator: ".")
    }

    /// A link-local address 169.254.x.y other than 169.254.0.y and 169.254.255.y, as
    /// Firecracker's schema requires; nil otherwise.
    public static func parseAddress(_ text: String) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCII), let octet = UInt8(part),
                  part.count == 1 || part.first != "0" else { return nil }
            value = value << 8 | UInt32(octet)
        }
        let third = (value >> 8) & 0xFF
        guard value >> 16 == 0xA9FE, third >= 1, third <= 254 else { return nil }
        return value
    }
}
