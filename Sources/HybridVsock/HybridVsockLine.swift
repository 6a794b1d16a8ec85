/// The one-line handshake of Firecracker's hybrid vsock, for both of its ends: a host
/// program connects to the VMM's Unix socket and writes `CONNECT <port>\n`; once the guest
/// accepts, the VMM answers `OK <host port>\n` and the socket carries the stream. The
/// device model (Devices) parses the first and writes the second, the runtime's agent
/// connection the other way round, so the format and its bound live here once.
public enum HybridVsockLine {
    /// Longest line either side accepts, newline included (`CONNECT 4294967295\r\n` is 20).
    public static let maxLength = 32

    /// What a parser made of the bytes received so far.
    public enum Parse: Equatable, Sendable {
        /// More bytes are needed.
        case incomplete
        /// A well-formed line: its port, and how many bytes the line took.
        case line(port: UInt32, length: Int)
        case invalid
    }

    /// `CONNECT <port>\n`, what a host program sends.
    public static func connect(port: UInt32) -> [UInt8] { Array("CONNECT \(port)\n".utf8) }

    /// `OK <port>\n`, the VMM's answer once the guest accepted (`port` is the host side's).
    public static func ok(port: UInt32) -> [UInt8] { Array("OK \(port)\n".utf8) }

    /// Looks for a complete CONNECT line at the start of `bytes`.
    public static func parseConnect(_ bytes: [UInt8]) -> Parse { parse(bytes, keyword: connectKeyword) }

    /// Looks for a complete OK line at the start of `bytes`.
    public static func parseOK(_ bytes: [UInt8]) -> Parse { parse(bytes, keyword: okKeyword) }

    private static let connectKeyword = Array("CONNECT ".utf8)
    private static let okKeyword = Array("OK ".utf8)

    /// `<keyword><decimal UInt32>[\r]\n` within `maxLength` bytes.
    private static func parse(_ bytes: [UInt8], keyword: [UInt8]) -> Parse {
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else {
            return bytes.count >= maxLength ? .invalid : (isPlausiblePrefix(bytes, keyword: keyword) ? .incomplete : .invalid)
        }
        guard newline < maxLength else { return .invalid }
        var line = Array(bytes[..<newline])
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        guard line.count > keyword.count, Array(line[..<keyword.count]) == keyword else { return .invalid }
        let digits = line[keyword.count...]
        guard digits.count <= 10, digits.allSatisfy(isDigit) else { return .invalid }
        var value: UInt64 = 0
        for d in digits { value = value * 10 + UInt64(d - UInt8(ascii: "0")) }
        guard value <= UInt64(UInt32.max) else { return .invalid }
        return .line(port: UInt32(value), length: newline + 1)
    }

    /// Rejects garbage early: what arrived so far must be a prefix of `<keyword><digits>`.
    private static func isPlausiblePrefix(_ bytes: [UInt8], keyword: [UInt8]) -> Bool {
        for (i, byte) in bytes.enumerated() {
            if i < keyword.count {
                if byte != keyword[i] { return false }
            } else if !isDigit(byte) && byte != UInt8(ascii: "\r") {
                return false
            }
        }
        return true
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}
