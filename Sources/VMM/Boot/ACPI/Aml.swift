/// A small encoder for the ACPI Machine Language objects the VMM's DSDT needs: names,
/// integers, strings, packages, scopes, devices and resource templates (ACPI 6.5, 20.2
/// and 6.4). Hand-encoded bytes are how bugs hide; this keeps the encoding in one place.
public enum Aml {
    /// One AML term, already encoded.
    public struct Term: Equatable {
        public let bytes: [UInt8]
        public init(_ bytes: [UInt8]) { self.bytes = bytes }
    }

    /// PkgLength for a body of `bodyLength` bytes (the length counts its own bytes).
    public static func packageLength(_ bodyLength: Int) -> [UInt8] {
        if bodyLength + 1 < 0x40 { return [UInt8(bodyLength + 1)] }
        for extra in 1...3 {
            let total = bodyLength + 1 + extra
            if total < 1 << (4 + 8 * extra) {
                var bytes = [UInt8(extra << 6) | UInt8(total & 0xF)]
                for i in 0..<extra { bytes.append(UInt8(truncatingIfNeeded: total >> (4 + 8 * i))) }
                return bytes
            }
        }
        preconditionFailure("AML package of \(bodyLength) bytes is too large")
    }

    /// A NameString: an optional root prefix and dot-separated 4-character segments.
    public static func nameString(_ path: String) -> [UInt8] {
        var path = Substring(path)
        var bytes: [UInt8] = []
        if path.hasPrefix("\\") {
            bytes.append(0x5C)
            path = path.dropFirst()
        }
        let segments = path.split(separator: ".").map { segment -> [UInt8] in
            precondition(segment.count >= 1 && segment.count <= 4, "bad AML name segment \(segment)")
            return Array(segment.utf8) + [UInt8](repeating: UInt8(ascii: "_"), count: 4 - segment.count)
        }
        switch segments.count {
        case 0: bytes.append(0x00)
        case 1: bytes += segments[0]
        case 2: bytes += [0x2E] + segments[0] + segments[1]
        default: bytes += [0x2F, UInt8(segments.count)] + segments.flatMap { $0 }
        }
        return bytes
    }

    public static func integer(_ value: UInt64) -> Term {
        switch value {
        case 0: return Term([0x00])
        case 1: return Term([0x01])
        case ...0xFF: return Term([0x0A, UInt8(value)])
        case ...0xFFFF: return Term([0x0B] + le(value, 2))
        case ...0xFFFF_FFFF: return Term([0x0C] + le(value, 4))
        default: return Term([0x0E] + le(value, 8))
        }
    }

    public static func string(_ value: String) -> Term {
        Term([0x0D] + Array(value.utf8) + [0x00])
    }

    /// EISA ID compression of a PNP ID such as "PNP0501".
    public static func eisaId(_ id: String) -> Term {
        let chars = Array(id.utf8)
        precondition(chars.count == 7, "EISA IDs have 7 characters")
        func hex(_ c: UInt8) -> UInt32 { UInt32(c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57) }
        let vendor = (UInt32(chars[0] - 0x40) << 10) | (UInt32(chars[1] - 0x40) << 5) | UInt32(chars[2] - 0x40)
        let product = (hex(chars[3]) << 12) | (hex(chars[4]) << 8) | (hex(chars[5]) << 4) | hex(chars[6])
        // Stored big-endian within the little-endian DWord, as ACPI defines it.
        let value = UInt32(vendor >> 8) | (vendor & 0xFF) << 8 | (product >> 8) << 16 | (product & 0xFF) << 24
        return Term([0x0C] + le(UInt64(value), 4))
    }

    public static func name(_ path: String, _ value: Term) -> Term {
        Term([0x08] + nameString(path) + value.bytes)
    }

    public static func package(_ elements: [Term]) -> Term {
        let body = [UInt8(elements.count)] + elements.flatMap(\.bytes)
        return Term([0x12] + packageLength(body.count) + body)
    }

    public static func scope(_ path: String, _ terms: [Term]) -> Term {
        let body = nameString(path) + terms.flatMap(\.bytes)
        return Term([0x10] + packageLength(body.count) + body)
    }

    public static func device(_ path: String, _ terms: [Term]) -> Term {
        let body = nameString(path) + terms.flatMap(\.bytes)
        return Term([0x5B, 0x82] + packageLength(body.count) + body)
    }

    /// A resource descriptor inside a `resourceTemplate`.
    public struct Resource {
        public let bytes: [UInt8]

        /// 16-bit decoded I/O port range (small descriptor 0x47).
        public static func io(_ base: UInt16, length: UInt8, alignment: UInt8 = 1) -> Resource {
            Resource(bytes: [0x47, 0x01] + le(UInt64(base), 2) + le(UInt64(base), 2) + [alignment, length])
        }

        /// An ISA IRQ, edge-triggered active-high (small descriptor 0x22).
        public static func irqNoFlags(_ irq: UInt8) -> Resource {
            Resource(bytes: [0x22] + le(UInt64(1) << irq, 2))
        }

        /// A fixed 32-bit memory range (large descriptor 0x86).
        public static func memory32Fixed(_ base: UInt32, length: UInt32, writable: Bool = true) -> Resource {
            Resource(bytes: [0x86, 0x09, 0x00, writable ? 1 : 0] + le(UInt64(base), 4) + le(UInt64(length), 4))
        }

        /// An extended interrupt (large descriptor 0x89): consumer, edge, active-high, exclusive.
        public static func interrupt(_ gsi: UInt32) -> Resource {
            Resource(bytes: [0x89, 0x06, 0x00, 0x03, 0x01] + le(UInt64(gsi), 4))
        }
    }

    /// ResourceTemplate(): a Buffer of descriptors closed by an End Tag.
    public static func resourceTemplate(_ resources: [Resource]) -> Term {
        let data = resources.flatMap(\.bytes) + [0x79, 0x00]
        let body = integer(UInt64(data.count)).bytes + data
        return Term([0x11] + packageLength(body.count) + body)
    }

    static func le(_ value: UInt64, _ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }
}
