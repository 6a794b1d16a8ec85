/// Bounds-checked little-endian reads from an untrusted image (kernel, initrd header).
/// Every read returns nil instead of trapping when it would run past the end.
public struct ByteReader {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    public var count: Int { bytes.count }

    public func has(_ offset: Int, _ length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= bytes.count && length <= bytes.count - offset
    }

    func integer<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T? {
        let size = MemoryLayout<T>.size
        guard has(offset, size) else { return nil }
        var value: T = 0
        for i in 0..<size { value |= T(bytes[offset + i]) << (8 * i) }
        return value
    }

    public func u8(_ offset: Int) -> UInt8? { integer(UInt8.self, at: offset) }
    public func u16(_ offset: Int) -> UInt16? { integer(UInt16.self, at: offset) }
    public func u32(_ offset: Int) -> UInt32? { integer(UInt32.self, at: offset) }
    public func u64(_ offset: Int) -> UInt64? { integer(UInt64.self, at: offset) }

    public func slice(_ offset: Int, _ length: Int) -> ArraySlice<UInt8>? {
        guard has(offset, length) else { return nil }
        return bytes[offset..<(offset + length)]
    }

    // Throwing reads for parsers: a short image is a malformed image, never a trap.

    func required<T>(_ value: T?, _ offset: Int, _ length: Int) throws -> T {
        guard let value else {
            throw KernelImageError.malformed("truncated: \(length) bytes at offset 0x\(String(offset, radix: 16)) are past the end")
        }
        return value
    }

    public func u8(at offset: Int) throws -> UInt8 { try required(u8(offset), offset, 1) }
    public func u16(at offset: Int) throws -> UInt16 { try required(u16(offset), offset, 2) }
    public func u32(at offset: Int) throws -> UInt32 { try required(u32(offset), offset, 4) }
    public func u64(at offset: Int) throws -> UInt64 { try required(u64(offset), offset, 8) }
    public func bytes(at offset: Int, count: Int) throws -> ArraySlice<UInt8> {
        try required(slice(offset, count), offset, count)
    }
}

/// Little-endian writes into a byte buffer being assembled (zero page, tables).
public struct ByteWriter {
    public private(set) var bytes: [UInt8]

    public init(size: Int) {
        bytes = [UInt8](repeating: 0, count: size)
    }

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    mutating func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        let size = MemoryLayout<T>.size
        if offset + size > bytes.count { bytes += [UInt8](repeating: 0, count: offset + size - bytes.count) }
        for i in 0..<size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    public mutating func u8(_ value: UInt8, at offset: Int) { put(value, at: offset) }
    public mutating func u16(_ value: UInt16, at offset: Int) { put(value, at: offset) }
    public mutating func u32(_ value: UInt32, at offset: Int) { put(value, at: offset) }
    public mutating func u64(_ value: UInt64, at offset: Int) { put(value, at: offset) }

    public mutating func put<C: Collection>(_ data: C, at offset: Int) where C.Element == UInt8 {
        if offset + data.count > bytes.count { bytes += [UInt8](repeating: 0, count: offset + data.count - bytes.count) }
        for (i, byte) in data.enumerated() { bytes[offset + i] = byte }
    }

    public mutating func ascii(_ text: String, at offset: Int) { put(Array(text.utf8), at: offset) }

    public mutating func append<C: Collection>(_ data: C) where C.Element == UInt8 { bytes += data }
}

/// The 8-bit checksum used by the MP table and ACPI: the value that makes all bytes sum to 0.
public func checksumByte<C: Collection>(_ bytes: C) -> UInt8 where C.Element == UInt8 {
    var sum: UInt8 = 0
    for b in bytes { sum &+= b }
    return 0 &- sum
}
