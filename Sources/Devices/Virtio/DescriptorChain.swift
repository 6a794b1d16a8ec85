import VMM

/// Why a descriptor chain was refused. The request fails; the VMM carries on.
public enum DescriptorChainError: Error, Equatable, CustomStringConvertible {
    case headOutOfRange(UInt16)
    case indexOutOfRange(UInt16)
    case tooLong
    case badIndirectTable(length: UInt32)
    case indirectTableTooLong(entries: UInt32, queueSize: UInt16)
    case nestedIndirect
    case indirectNotNegotiated
    case readableAfterWritable
    case outOfGuestMemory(address: UInt64, length: UInt32)

    public var description: String {
        switch self {
        case .headOutOfRange(let i): return "chain head \(i) is outside the queue"
        case .indexOutOfRange(let i): return "descriptor index \(i) is outside its table"
        case .tooLong: return "descriptor chain is longer than its table (a loop?)"
        case .badIndirectTable(let length): return "indirect table of \(length) bytes is not a whole number of descriptors"
        case .indirectTableTooLong(let entries, let queueSize):
            return "indirect table of \(entries) descriptors is longer than the queue (\(queueSize))"
        case .nestedIndirect: return "indirect descriptor inside an indirect table, or with NEXT set"
        case .indirectNotNegotiated: return "indirect descriptor used without VIRTIO_F_INDIRECT_DESC"
        case .readableAfterWritable: return "device-readable descriptor after a device-writable one"
        case .outOfGuestMemory(let address, let length):
            return "buffer 0x\(String(address, radix: 16))+\(length) is outside guest memory"
        }
    }
}

/// One guest buffer of a chain, already checked to lie inside guest memory.
public struct GuestBuffer: Equatable, Sendable {
    public var address: UInt64
    public var length: UInt32
}

/// A request the driver made available: its head index and its buffers split into the
/// device-readable part and the device-writable part, in order. Parsing follows every
/// NEXT link and indirect table but trusts nothing: indices, lengths, addresses, loops,
/// nesting and readable/writable order are all checked. How the driver split headers
/// and data across descriptors does not matter to the users of `reader()`/`writer()`.
public struct DescriptorChain: Sendable {
    public let head: UInt16
    public private(set) var readable: [GuestBuffer] = []
    public private(set) var writable: [GuestBuffer] = []

    static let flagNext: UInt16 = 1
    static let flagWrite: UInt16 = 2
    static let flagIndirect: UInt16 = 4
    static let descriptorSize = 16

    public var readableLength: Int { readable.reduce(0) { $0 + Int($1.length) } }
    public var writableLength: Int { writable.reduce(0) { $0 + Int($1.length) } }

    /// Parses the chain starting at `head` in the descriptor table at `table` of `size` entries.
    public init(memory: GuestMemory, table: UInt64, size: UInt16, head: UInt16, indirectAllowed: Bool) throws {
        guard head < size else { throw DescriptorChainError.headOutOfRange(head) }
        self.head = head
        var index = head
        var visited = 0
        var tableAddress = table
        var tableSize = Int(size)
        var inIndirect = false
        while true {
            visited += 1
            guard visited <= tableSize else { throw DescriptorChainError.tooLong }
            let at = tableAddress &+ UInt64(index) &* UInt64(Self.descriptorSize)
            let address = try memory.load(UInt64.self, at: at)
            let length = try memory.load(UInt32.self, at: at &+ 8)
            let flags = try memory.load(UInt16.self, at: at &+ 12)
            let next = try memory.load(UInt16.self, at: at &+ 14)

            if flags & Self.flagIndirect != 0 {
                guard indirectAllowed else { throw DescriptorChainError.indirectNotNegotiated }
                guard !inIndirect, flags & Self.flagNext == 0 else { throw DescriptorChainError.nestedIndirect }
                guard length > 0, length % UInt32(Self.descriptorSize) == 0 else {
                    throw DescriptorChainError.badIndirectTable(length: length)
                }
                // No chain may be longer than the queue (virtio 1.2, 2.7.5.3.1): refused
                // before the table is walked, so a table claiming 64 MiB costs nothing.
                guard length / UInt32(Self.descriptorSize) <= UInt32(size) else {
                    throw DescriptorChainError.indirectTableTooLong(entries: length / UInt32(Self.descriptorSize), queueSize: size)
                }
                guard memory.contains(address, length: Int(length)) else {
                    throw DescriptorChainError.outOfGuestMemory(address: address, length: length)
                }
                inIndirect = true
                tableAddress = address
                tableSize = Int(length) / Self.descriptorSize
                index = 0
                visited = 0
                continue
            }

            if length > 0 {
                guard memory.contains(address, length: Int(length)) else {
                    throw DescriptorChainError.outOfGuestMemory(address: address, length: length)
                }
                if flags & Self.flagWrite != 0 {
                    writable.append(GuestBuffer(address: address, length: length))
                } else {
                    guard writable.isEmpty else { throw DescriptorChainError.readableAfterWritable }
                    readable.append(GuestBuffer(address: address, length: length))
                }
            }
            guard flags & Self.flagNext != 0 else { break }
            guard Int(next) < tableSize else { throw DescriptorChainError.indexOutOfRange(next) }
            index = next
        }
    }

    public func reader(_ memory: GuestMemory) -> ChainReader { ChainReader(memory: memory, buffers: readable) }
    public func writer(_ memory: GuestMemory) -> ChainWriter { ChainWriter(memory: memory, buffers: writable) }
}

/// Walks a list of guest buffers as one byte stream.
public struct BufferCursor {
    let memory: GuestMemory
    let buffers: [GuestBuffer]
    var index = 0
    var offset: UInt32 = 0
    public private(set) var consumed = 0

    init(memory: GuestMemory, buffers: [GuestBuffer]) {
        self.memory = memory
        self.buffers = buffers
    }

    public var remaining: Int {
        guard index < buffers.count else { return 0 }
        return buffers[index...].reduce(0) { $0 + Int($1.length) } - Int(offset)
    }

    /// Host views of the next `count` bytes (fewer if the buffers end), consuming them.
    public mutating func take(_ count: Int) -> [UnsafeMutableRawBufferPointer] {
        var pieces: [UnsafeMutableRawBufferPointer] = []
        var wanted = count
        while wanted > 0, index < buffers.count {
            let buffer = buffers[index]
            let available = Int(buffer.length - offset)
            let n = min(available, wanted)
            // Checked at parse time; a failure here would mean guest memory changed shape.
            if let piece = try? memory.slice(at: buffer.address &+ UInt64(offset), length: n) { pieces.append(piece) }
            wanted -= n
            consumed += n
            offset += UInt32(n)
            if offset == buffer.length {
                index += 1
                offset = 0
            }
        }
        return pieces
    }
}

/// Reads the device-readable part of a chain as a stream.
public struct ChainReader {
    public private(set) var cursor: BufferCursor

    init(memory: GuestMemory, buffers: [GuestBuffer]) {
        cursor = BufferCursor(memory: memory, buffers: buffers)
    }

    public var remaining: Int { cursor.remaining }

    /// Copies up to `target.count` bytes; returns how many were read.
    public mutating func read(into target: UnsafeMutableRawBufferPointer) -> Int {
        var copied = 0
        for piece in cursor.take(target.count) {
            (target.baseAddress! + copied).copyMemory(from: piece.baseAddress!, byteCount: piece.count)
            copied += piece.count
        }
        return copied
    }

    /// Reads a little-endian integer, or nil if the chain has too few readable bytes.
    public mutating func read<T: FixedWidthInteger>(_: T.Type) -> T? {
        var value: T = 0
        let n = withUnsafeMutableBytes(of: &value) { read(into: $0) }
        return n == MemoryLayout<T>.size ? T(littleEndian: value) : nil
    }

    /// Host views of the next `count` readable bytes, for vectored I/O.
    public mutating func take(_ count: Int) -> [UnsafeMutableRawBufferPointer] { cursor.take(count) }
}

/// Writes the device-writable part of a chain as a stream.
public struct ChainWriter {
    public private(set) var cursor: BufferCursor

    init(memory: GuestMemory, buffers: [GuestBuffer]) {
        cursor = BufferCursor(memory: memory, buffers: buffers)
    }

    public var remaining: Int { cursor.remaining }
    /// Bytes written so far: the `len` reported in the used ring.
    public var written: Int { cursor.consumed }

    /// Copies as much of `source` as fits; returns how many bytes were written.
    @discardableResult
    public mutating func write(_ source: UnsafeRawBufferPointer) -> Int {
        var copied = 0
        for piece in cursor.take(source.count) {
            piece.baseAddress!.copyMemory(from: source.baseAddress! + copied, byteCount: piece.count)
            copied += piece.count
        }
        return copied
    }

    @discardableResult
    public mutating func write(_ bytes: [UInt8]) -> Int { bytes.withUnsafeBytes { write($0) } }

    /// Host views of the next `count` writable bytes, for vectored I/O.
    public mutating func take(_ count: Int) -> [UnsafeMutableRawBufferPointer] { cursor.take(count) }
}
