/// A fuzz input read front to back. Past its end every read yields zeros (and `rest` an
/// empty array), so any input, however short, is a complete program for a target.
public struct FuzzInput {
    public let bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    }

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    public var isAtEnd: Bool { offset >= bytes.count }

    public mutating func u8() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// Little-endian, like everything a virtio driver writes.
    public mutating func integer<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) -> T {
        var value: T = 0
        for i in 0..<MemoryLayout<T>.size { value |= T(u8()) << (8 * i) }
        return value
    }

    public mutating func u16() -> UInt16 { integer(UInt16.self) }
    public mutating func u32() -> UInt32 { integer(UInt32.self) }
    public mutating func u64() -> UInt64 { integer(UInt64.self) }

    /// Up to `count` bytes (fewer at the end of the input).
    public mutating func take(_ count: Int) -> [UInt8] {
        let n = min(count, bytes.count - min(offset, bytes.count))
        defer { offset += n }
        return Array(bytes[offset..<(offset + n)])
    }

    /// Everything not read yet.
    public mutating func rest() -> [UInt8] { take(bytes.count) }
}
