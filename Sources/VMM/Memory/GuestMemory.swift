import Glibc

/// Why a guest-physical access was refused.
public enum GuestMemoryError: Error, CustomStringConvertible, Equatable {
    case outOfBounds(address: UInt64, length: Int)
    case allocationFailed(size: UInt64, errno: Int32)
    case overlappingRegions

    public var description: String {
        switch self {
        case .outOfBounds(let address, let length):
            return "guest access of \(length) bytes at 0x\(String(address, radix: 16)) is outside guest RAM"
        case .allocationFailed(let size, let errno):
            return "cannot allocate \(size >> 20) MiB of guest memory: \(String(cString: strerror(errno)))"
        case .overlappingRegions:
            return "guest memory regions overlap"
        }
    }
}

/// One contiguous range of guest RAM backed by an anonymous host mapping.
public struct GuestMemoryRegion: Sendable {
    public let guestAddress: UInt64
    public let size: UInt64
    /// The host mapping, as an integer so the region stays `Sendable`.
    let hostBase: UInt

    public var host: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: hostBase)! }
    public var end: UInt64 { guestAddress + size }

    func contains(_ address: UInt64, length: UInt64) -> Bool {
        address >= guestAddress && length <= size && address - guestAddress <= size - length
    }
}

/// Guest RAM as a set of regions. Every access the VMM makes on behalf of the guest goes
/// through `slice(at:length:)`, which refuses anything not wholly inside one region: a
/// malicious guest cannot make the VMM read or write outside its own RAM.
public final class GuestMemory: Sendable {
    public let regions: [GuestMemoryRegion]

    /// Maps anonymous, private, zero-filled memory for each `(guestAddress, size)`.
    public init(ranges: [(guestAddress: UInt64, size: UInt64)]) throws {
        let sorted = ranges.sorted { $0.guestAddress < $1.guestAddress }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.guestAddress + a.size > b.guestAddress {
            throw GuestMemoryError.overlappingRegions
        }
        var mapped: [GuestMemoryRegion] = []
        for range in sorted {
            let host = mmap(nil, Int(range.size), PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
            if host == MAP_FAILED || host == nil {
                let err = errno
                for region in mapped { munmap(region.host, Int(region.size)) }
                throw GuestMemoryError.allocationFailed(size: range.size, errno: err)
            }
            // Guest RAM is never worth a core dump and must not be inherited by forks.
            _ = madvise(host, Int(range.size), MADV_DONTDUMP)
            _ = madvise(host, Int(range.size), MADV_DONTFORK)
            mapped.append(GuestMemoryRegion(guestAddress: range.guestAddress, size: range.size,
                                            hostBase: UInt(bitPattern: host)))
        }
        regions = mapped
    }

    deinit {
        for region in regions { munmap(region.host, Int(region.size)) }
    }

    public var totalSize: UInt64 { regions.reduce(0) { $0 + $1.size } }

    public func contains(_ address: UInt64, length: Int) -> Bool {
        region(containing: address, length: length) != nil
    }

    @inline(__always)
    func region(containing address: UInt64, length: Int) -> GuestMemoryRegion? {
        guard length >= 0 else { return nil }
        for region in regions where region.contains(address, length: UInt64(length)) {
            return region
        }
        return nil
    }

    /// Host view of `length` bytes at guest `address`, or an error if any byte is outside RAM.
    @inline(__always)
    public func slice(at address: UInt64, length: Int) throws -> UnsafeMutableRawBufferPointer {
        guard let region = region(containing: address, length: length) else {
            throw GuestMemoryError.outOfBounds(address: address, length: length)
        }
        return UnsafeMutableRawBufferPointer(start: region.host + Int(address - region.guestAddress), count: length)
    }

    public func write(_ bytes: UnsafeRawBufferPointer, at address: UInt64) throws {
        let target = try slice(at: address, length: bytes.count)
        if bytes.count > 0 { target.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
    }

    public func write(_ bytes: [UInt8], at address: UInt64) throws {
        try bytes.withUnsafeBytes { try write($0, at: address) }
    }

    public func read(at address: UInt64, length: Int) throws -> [UInt8] {
        let source = try slice(at: address, length: length)
        return Array(source)
    }

    /// Reads a little-endian integer.
    public func load<T: FixedWidthInteger>(_: T.Type, at address: UInt64) throws -> T {
        let source = try slice(at: address, length: MemoryLayout<T>.size)
        return T(littleEndian: source.loadUnaligned(as: T.self))
    }

    /// Writes a little-endian integer.
    public func store<T: FixedWidthInteger>(_ value: T, at address: UInt64) throws {
        let target = try slice(at: address, length: MemoryLayout<T>.size)
        target.storeBytes(of: value.littleEndian, as: T.self)
    }

    /// Zeroes `length` bytes at `address`.
    public func zero(at address: UInt64, length: Int) throws {
        let target = try slice(at: address, length: length)
        if length > 0 { memset(target.baseAddress!, 0, length) }
    }
}
