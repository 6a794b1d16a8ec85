/// toml++ (under TOMLKit) asserts, aborting the runtime in a debug build and assuming the
/// impossible in a release one, on a table header whose key starts with a character no
/// key can start with (`[=]`, `[.a]`, `[[ é]]`). Such a header is invalid TOML anyway:
/// this finds it before toml++ sees the file, so that the file is refused with its line.
/// Only real headers count: a line inside a multi-line string or array is not one.
enum TOMLHeaderCheck {
    private enum Context { case code, header, basic, literal, multilineBasic, multilineLiteral }

    /// The line of the first table header whose key starts badly, or nil.
    static func badHeaderLine(_ text: String) -> Int? {
        let bytes = Array(text.utf8)
        var line = 1
        var context = Context.code
        var valueDepth = 0  // open [ and { of values (arrays, inline tables)
        var lineStart = true
        var i = 0
        func at(_ offset: Int, _ literal: String) -> Bool { bytes[offset...].starts(with: literal.utf8) }
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\n") {
                line += 1
                if context != .multilineBasic && context != .multilineLiteral {
                    context = .code
                    lineStart = true
                }
                i += 1
                continue
            }
            switch context {
            case .basic, .multilineBasic:
                if c == UInt8(ascii: "\\") {
                    i += 2
                    continue
                }
                if context == .basic, c == UInt8(ascii: "\"") { context = .code }
                if context == .multilineBasic, at(i, "\"\"\"") { context = .code; i += 2 }
            case .literal:
                if c == UInt8(ascii: "'") { context = .code }
            case .multilineLiteral:
                if at(i, "'''") { context = .code; i += 2 }
            case .code, .header:
                if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r") { break }
                if c == UInt8(ascii: "#") {
                    while i + 1 < bytes.count, bytes[i + 1] != UInt8(ascii: "\n") { i += 1 }
                    break
                }
                let inHeader = context == .header
                if lineStart, valueDepth == 0, c == UInt8(ascii: "[") {
                    lineStart = false
                    context = .header
                    var key = i + 1
                    if key < bytes.count, bytes[key] == UInt8(ascii: "[") { key += 1 }
                    while key < bytes.count, bytes[key] == UInt8(ascii: " ") || bytes[key] == UInt8(ascii: "\t") { key += 1 }
                    if key < bytes.count, !canStartKey(bytes[key]) { return line }
                    i = key
                    continue
                }
                lineStart = false
                if at(i, "\"\"\"") { context = .multilineBasic; i += 2 }
                else if at(i, "'''") { context = .multilineLiteral; i += 2 }
                else if c == UInt8(ascii: "\"") { context = .basic }
                else if c == UInt8(ascii: "'") { context = .literal }
                else if inHeader { break }
                else if c == UInt8(ascii: "[") || c == UInt8(ascii: "{") { valueDepth += 1 }
                else if c == UInt8(ascii: "]") || c == UInt8(ascii: "}") { valueDepth = max(0, valueDepth - 1) }
            }
            i += 1
        }
        return nil
    }

    /// A bare key character, a quote that starts a quoted key, or the `]` toml++ itself
    /// refuses ("blank bare keys").
    private static func canStartKey(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"),
             UInt8(ascii: "\""), UInt8(ascii: "'"), UInt8(ascii: "]"):
            return true
        default:
            return false
        }
    }
}
