/// What Foundation's JSON parsers let through and a caller's document must not hold: two
/// equal keys in one object (JSONDecoder and JSONSerialization keep the last one silently,
/// so the value that counts is not the one a reviewer may read) and a NUL in a string (a
/// path would be cut short at it). One scan serves the API bodies, the VMM's config file and
/// the runtime's OCI documents. Syntax errors are left to the real parser: on text that is
/// not JSON the scan stops quietly.
public enum StrictJSON {
    /// JSONDecoder's own nesting limit; deeper documents are refused here too.
    public static let maxDepth = 512

    public static func check<Bytes: Collection>(_ bytes: Bytes) throws where Bytes.Element == UInt8 {
        if let done = try bytes.withContiguousStorageIfAvailable({ try check(UnsafeRawBufferPointer($0)) }) {
            return done
        }
        try Array(bytes).withUnsafeBytes { try check($0) }
    }

    /// Throws `HostInputError.duplicateKey`, `.nulCharacter` or `.nestedTooDeep`, naming the
    /// field as `drives[0].path_on_host`.
    public static func check(_ text: UnsafeRawBufferPointer) throws {
        var scanner = Scanner(text: text)
        try scanner.run()
    }

    private enum Frame {
        case object(keys: Set<String>, key: String?, expectingKey: Bool)
        case array(index: Int)
    }

    private struct Scanner {
        let text: UnsafeRawBufferPointer
        var position = 0
        var frames: [Frame] = []

        init(text: UnsafeRawBufferPointer) { self.text = text }

        mutating func run() throws {
            while position < text.count {
                let byte = text[position]
                position += 1
                switch byte {
                case UInt8(ascii: "{"):
                    try push(.object(keys: [], key: nil, expectingKey: true))
                case UInt8(ascii: "["):
                    try push(.array(index: 0))
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    guard !frames.isEmpty else { return }
                    frames.removeLast()
                case UInt8(ascii: ","):
                    switch frames.last {
                    case .object(let keys, let key, _): frames[frames.count - 1] = .object(keys: keys, key: key, expectingKey: true)
                    case .array(let index): frames[frames.count - 1] = .array(index: index + 1)
                    case nil: return
                    }
                case UInt8(ascii: "\""):
                    if case .object(var keys, _, true) = frames.last {
                        guard let key = try string(decoding: true) else { return }
                        // Dropped from the frame while inserting so that the set is not copied.
                        frames[frames.count - 1] = .array(index: 0)
                        let inserted = keys.insert(key).inserted
                        frames[frames.count - 1] = .object(keys: keys, key: key, expectingKey: false)
                        if !inserted { throw HostInputError.duplicateKey(field: fieldPath()) }
                    } else {
                        guard try string(decoding: false) != nil else { return }
                    }
                default:
                    continue  // whitespace, ':', numbers, true, false, null
                }
            }
        }

        mutating func push(_ frame: Frame) throws {
            guard frames.count < StrictJSON.maxDepth else {
                throw HostInputError.nestedTooDeep(field: fieldPath(), limit: StrictJSON.maxDepth)
            }
            frames.append(frame)
        }

        /// Reads a string after its opening quote; its value only when `decoding` (keys),
        /// otherwise "". nil when the text ends first.
        mutating func string(decoding: Bool) throws -> String? {
            var utf8: [UInt8] = []
            while position < text.count {
                let byte = text[position]
                position += 1
                if byte == UInt8(ascii: "\"") { return decoding ? String(decoding: utf8, as: UTF8.self) : "" }
                guard byte == UInt8(ascii: "\\") else {
                    if decoding { utf8.append(byte) }
                    continue
                }
                guard position < text.count else { return nil }
                let escape = text[position]
                position += 1
                guard escape == UInt8(ascii: "u") else {
                    if decoding { utf8.append(Self.unescaped(escape)) }
                    continue
                }
                guard var scalar = hex4() else { return nil }
                if scalar == 0 { throw HostInputError.nulCharacter(field: fieldPath(inKey: decoding)) }
                guard decoding else { continue }
                if (0xD800..<0xDC00).contains(scalar), position + 1 < text.count,
                   text[position] == UInt8(ascii: "\\"), text[position + 1] == UInt8(ascii: "u") {
                    position += 2
                    guard let low = hex4() else { return nil }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low &- 0xDC00) & 0x3FF
                }
                utf8.append(contentsOf: String(Unicode.Scalar(scalar).map(Character.init) ?? "\u{FFFD}").utf8)
            }
            return nil
        }

        mutating func hex4() -> UInt32? {
            guard position + 4 <= text.count else { return nil }
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard let digit = Self.hexDigit(text[position]) else { return nil }
                value = value << 4 | digit
                position += 1
            }
            return value
        }

        static func hexDigit(_ byte: UInt8) -> UInt32? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
            default: return nil
            }
        }

        static func unescaped(_ escape: UInt8) -> UInt8 {
            switch escape {
            case UInt8(ascii: "b"): return 0x08
            case UInt8(ascii: "f"): return 0x0C
            case UInt8(ascii: "n"): return 0x0A
            case UInt8(ascii: "r"): return 0x0D
            case UInt8(ascii: "t"): return 0x09
            default: return escape  // '"', '\\', '/'
            }
        }

        /// The path of the value being read: `a.b[2]`; with `inKey`, of the object holding the key.
        func fieldPath(inKey: Bool = false) -> String {
            var path = ""
            for (depth, frame) in frames.enumerated() {
                switch frame {
                case .object(_, let key, _):
                    if let key, !(inKey && depth == frames.count - 1) { path += path.isEmpty ? key : ".\(key)" }
                case .array(let index):
                    path += "[\(index)]"
                }
            }
            if inKey { return path.isEmpty ? "a key" : "a key in \(path)" }
            return path.isEmpty ? "(top level)" : path
        }
    }
}
