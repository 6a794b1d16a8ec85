import CLinux
import Glibc

/// Why a guest-physical access was refused.
public enum GuestMemoryError: Error, CustomStringConvertible, Equatable {
    case outOfBounds(address: UInt64, length: Int)
    case allocationFailed(size: UInt64, errno: Int32)
    case overlappingRegions
    case notHugePageSized(size: UInt64)

    public var description: String {
        switch self {
        case .outOfBounds(let address, let length):
            return "guest access of \(length) bytes at 0x\(String(address, radix: 16)) is outside guest RAM"
        case .allocationFailed(let size, let errno):
            return "cannot allocate \(size >> 20) MiB of guest memory: \(String(cString: strerror(errno)))"
        case .overlappingRegions:
            return "guest memory regions overlap"
        case .notHugePageSized(let size):
            return "a guest memory region of \(size >> 10) KiB is not a whole number of 2 MiB huge pages"
        }
    }
}

/// One contiguous range of guest RAM and its host mapping.
public struct GuestMemoryRegion: Sendable {
    public let guestAddress: UInt64
    public let size: UInt64
    /// The host mapping, as an integer so the region stays `Sendable`.
    let hostBase: UInt
    /// The memfd behind a shared region (another process maps it: a vhost-user backend),
    /// -1 for private anonymous memory; the region starts at offset 0 of it.
    public let fd: Int32

    /// The VMM's own address of the region (vhost-user's "userspace address").
    public var hostAddress: UInt64 { UInt64(hostBase) }

    public var host: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: hostBase)! }
    public var end: UInt64 { guestAddress + size }

    func contains(_ address: UInt64, length: UInt64) -> Bool {
        address >= guestAddress && length <= size && address - guestAddress <= size - length
    }
}

/// How guest RAM is backed.
public enum GuestMemoryBacking: Sendable, Equatable {
    /// Private anonymous memory: only this process (and KVM) sees it.
    case anonymous
    /// A MAP_SHARED mapping of one memfd per region, which the VMM can hand to another
    /// process (a vhost-user backend such as virtiofsd). Pages are still allocated on
    /// first touch, so RSS grows as with anonymous memory.
    case sharedMemfd
    /// As `sharedMemfd`, from the host's pool of 2 MiB huge pages (hugetlb), reserved when
    /// mapped: an empty pool fails the VM's start instead of faulting (SIGBUS) later.
    /// Every region must be a multiple of 2 MiB.
    case hugePages

    public static let hugePageSize: UInt64 = 2 << 20
}

/// Guest RAM as a set of regions. Every access the VMM makes on behalf of the guest goes
/// through `slice(at:length:)`, which refuses anything not wholly inside one region: a
/// malicious guest cannot make the VMM read or write outside its own RAM.
public final class GuestMemory: Sendable {
    public let regions: [GuestMemoryRegion]
    public let backing: GuestMemoryBacking
    /// Firecracker's `track_dirty_pages`: the pages the VMM writes are marked here (KVM
    /// logs the guest's own writes); nil when not tracking.
    public let dirtyPages: DirtyPageBitmap?

    /// Maps zero-filled memory for each `(guestAddress, size)`. `transparentHugePages` asks
    /// the kernel to back it with 2 MiB pages where it can (MADV_HUGEPAGE; the host's
    /// `transparent_hugepage/enabled` must be `madvise` or `always`), for fewer TLB misses.
    public init(ranges: [(guestAddress: UInt64, size: UInt64)], backing: GuestMemoryBacking = .anonymous,
                transparentHugePages: Bool = false, trackDirtyPages: Bool = false) throws {
        let sorted = ranges.sorted { $0.guestAddress < $1.guestAddress }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.guestAddress + a.size > b.guestAddress {
            throw GuestMemoryError.overlappingRegions
        }
        var mapped: [GuestMemoryRegion] = []
        for range in sorted {
            do {
                let region = try Self.map(range, backing)
                mapped.append(region)
                if transparentHugePages && backing != .hugePages { _ = madvise(region.host, Int(region.size), MADV_HUGEPAGE) }
            } catch {
                for region in mapped { Self.unmap(region) }
                throw error
            }
        }
        regions = mapped
        self.backing = backing
        dirtyPages = trackDirtyPages ? DirtyPageBitmap(regionSizes: mapped.map(\.size)) : nil
    }

    private static func map(_ range: (guestAddress: UInt64, size: UInt64), _ backing: GuestMemoryBacking) throws -> GuestMemoryRegion {
        var fd: Int32 = -1
        var flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
        if backing == .sharedMemfd || backing == .hugePages {
            let huge = backing == .hugePages
            if huge && range.size % GuestMemoryBacking.hugePageSize != 0 { throw GuestMemoryError.notHugePageSized(size: range.size) }
            fd = clinux_memfd_create("guest-ram", CLINUX_MFD_CLOEXEC | (huge ? CLINUX_MFD_HUGETLB_2MB : 0))
            guard fd >= 0 else { throw GuestMemoryError.allocationFailed(size: range.size, errno: errno) }
            guard ftruncate(fd, off_t(range.size)) == 0 else {
                let err = errno
                close(fd)
                throw GuestMemoryError.allocationFailed(size: range.size, errno: err)
            }
            // Huge pages are reserved now (ENOMEM if the pool is short), never promised.
            flags = huge ? MAP_SHARED : MAP_SHARED | MAP_NORESERVE
        }
        let host = mmap(nil, Int(range.size), PROT_READ | PROT_WRITE, flags, fd, 0)
        if host == MAP_FAILED || host == nil {
            let err = errno
            if fd >= 0 { close(fd) }
            throw GuestMemoryError.allocationFailed(size: range.size, errno: err)
        }
        // Guest RAM is never worth a core dump and must not be inherited by forks.
        _ = madvise(host, Int(range.size), MADV_DONTDUMP)
        _ = madvise(host, Int(range.size), MADV_DONTFORK)
        return GuestMemoryRegion(guestAddress: range.guestAddress, size: range.size,
                                 hostBase: UInt(bitPattern: host), fd: fd)
    }

    private static func unmap(_ region: GuestMemoryRegion) {
        munmap(region.host, Int(region.size))
        if region.fd >= 0 { close(region.fd) }
    }

    deinit {
        for region in regions { Self.unmap(region) }
    }

    /// Whether guest RAM comes from the host's huge-page pool.
    public var isHugePageBacked: Bool { backing == .hugePages }

    /// Whether another process can map this memory (every region has its memfd).
    public var isShared: Bool { regions.allSatisfy { $0.fd >= 0 } }

    /// The VMM's own address of guest `address`, for a backend that was given the regions
    /// (vhost-user ring addresses); nil unless `length` bytes there are all RAM.
    public func hostAddress(of address: UInt64, length: Int) -> UInt64? {
        guard let region = region(containing: address, length: length) else { return nil }
        return region.hostAddress + (address - region.guestAddress)
    }

    public var totalSize: UInt64 { regions.reduce(0) { $0 + $1.size } }

    public func contains(_ address: UInt64, length: Int) -> Bool {
        region(containing: address, length: length) != nil
    }

    @inline(__always)
    func regionIndex(containing address: UInt64, length: Int) -> Int? {
        guard length >= 0 else { return nil }
        for index in regions.indices where regions[index].contains(address, length: UInt64(length)) {
            return index
        }
        return nil
    }

    @inline(__always)
    func region(containing address: UInt64, length: Int) -> GuestMemoryRegion? {
        regionIndex(containing: address, length: length).map { regions[$0] }
    }

    /// Host view of `length` bytes at guest `address`, or an error if any byte is outside RAM.
    /// Not forced inline: Swift 6.3's release build miscompiled this body inlined into
    /// other modules once it read `dirtyPages` (a static kata-vmm crashed at its first
    /// slice, with a garbage error).
    public func slice(at address: UInt64, length: Int) throws -> UnsafeMutableRawBufferPointer {
        guard let index = regionIndex(containing: address, length: length) else {
            throw GuestMemoryError.outOfBounds(address: address, length: length)
        }
        let region = regions[index]
        let offset = address - region.guestAddress
        dirtyPages?.mark(region: index, offset: offset, length: length)
        return UnsafeMutableRawBufferPointer(start: region.host + Int(offset), count: length)
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

    /// Gives the host back the memory behind `length` bytes of guest RAM at `address`
    /// (balloon inflation, free page reporting): the guest reads zeroes there afterwards,
    /// and the pages are allocated again only when touched. Both ends must be page
    /// aligned (4 KiB; 2 MiB for huge pages), and the range inside one region. Private
    /// memory is dropped with MADV_DONTNEED, a memfd's with MADV_REMOVE (which frees its
    /// pages, not only this mapping of them). KVM's MMU notifiers keep the guest's view right.
    public func discard(at address: UInt64, length: Int) -> Bool {
        guard length > 0, let index = regionIndex(containing: address, length: length) else { return false }
        let region = regions[index]
        let page = region.fd >= 0 && isHugePageBacked ? Int(GuestMemoryBacking.hugePageSize) : 4096
        let offset = Int(address - region.guestAddress)
        guard offset % page == 0, length % page == 0 else { return false }
        // The pages now read as zeroes: a changed page for a diff snapshot.
        dirtyPages?.mark(region: index, offset: UInt64(offset), length: length)
        return madvise(region.host + offset, length, region.fd >= 0 ? MADV_REMOVE : MADV_DONTNEED) == 0
    }

    /// Marks the guest pages behind `buffer` (host memory from an earlier `slice`) as
    /// written, for writes that land after the slice was taken (asynchronous I/O). Does
    /// nothing unless dirty pages are tracked.
    public func markWritten(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let dirty = dirtyPages, let base = buffer.baseAddress, buffer.count > 0 else { return }
        let address = UInt(bitPattern: base)
        for index in regions.indices {
            let region = regions[index]
            let start = UInt(bitPattern: region.host)
            guard address >= start, address - start < UInt(region.size),
                  UInt(buffer.count) <= UInt(region.size) - (address - start) else { continue }
            dirty.mark(region: index, offset: UInt64(address - start), length: buffer.count)
            return
        }
    }

    /// Zeroes `length` bytes at `address`.
    public func zero(at address: UInt64, length: Int) throws {
        let target = try slice(at: address, length: length)
        if length > 0 { memset(target.baseAddress!, 0, length) }
    }
}
