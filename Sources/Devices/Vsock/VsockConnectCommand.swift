/// The one-line handshake of Firecracker's hybrid vsock: a host program connects to the
/// device's Unix socket and writes `CONNECT <port>\n`; once the guest accepts, the device
/// answers `OK <host port>\n` and the socket carries the stream.
public enum VsockConnectCommand {
    /// Longest line accepted, newline included.
    public static let maxLineLength = 32

    public enum Parse: Equatable {
        /// More bytes are needed.
        case incomplete
        /// A well-formed line: the guest port, and how many bytes the line took.
        case connect(port: UInt32, length: Int)
        case invalid
    }

    /// Looks for a complete command at the start of `bytes` (what a client sent so far).
    public static func parse(_ bytes: [UInt8]) -> Parse {
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else {
            return bytes.count >= maxLineLength ? .invalid : (isPlausiblePrefix(bytes) ? .incomplete : .invalid)
        }
        guard newline < maxLineLength else { return .invalid }
        var line = Array(bytes[..<newline])
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        let prefix = Array("CONNECT ".utf8)
        guard line.count > prefix.count, Array(line[..<prefix.count]) == prefix else { return .invalid }
        let digits = line[prefix.count...]
        guard digits.count <= 10, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return .invalid
        }
        var value: UInt64 = 0
        for d in digits { value = value * 10 + UInt64(d - UInt8(ascii: "0")) }
        guard value <= UInt64(UInt32.max) else { return .invalid }
        return .connect(port: UInt32(value), length: newline + 1)
    }

    /// Rejects garbage early: what arrived so far must be a prefix of `CONNECT <digits>`.
    static func isPlausiblePrefix(_ bytes: [UInt8]) -> Bool {
        let prefix = Array("CONNECT ".utf8)
        for (i, byte) in bytes.enumerated() {
            if i < prefix.count {
                if byte != prefix[i] { return false }
            } else if !(byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) && byte != UInt8(ascii: "\r") {
                return false
            }
        }
        return true
    }

    public static func okLine(port: UInt32) -> [UInt8] { Array("OK \(port)\n".utf8) }
}
