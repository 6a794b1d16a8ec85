/// 64-bit FNV-1a: short, stable names derived from longer text (socket directories, cache
/// entries). Not a cryptographic hash: callers that must not confuse two inputs compare
/// the inputs themselves.
public struct FNV1a {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func combine<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        for byte in bytes {
            value ^= UInt64(byte)
            value &*= 0x100_0000_01b3
        }
    }

    public static func hash(_ text: String) -> UInt64 {
        var hasher = FNV1a()
        hasher.combine(text.utf8)
        return hasher.value
    }

    /// Sixteen lowercase hex digits.
    public static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
