import Atomics

/// The guest pages the VMM itself wrote, one bit per 4 KiB page of each region. KVM's dirty
/// log sees only what the vCPUs write; what a device writes on the guest's behalf (a block
/// read, a received frame, a used ring) goes through `GuestMemory.slice` and is marked here,
/// so that a diff snapshot holds every changed page. Marking is lock-free (any device thread
/// or vCPU may do it); it over-approximates, since a slice that is only read marks too.
public final class DirtyPageBitmap: @unchecked Sendable {  // words are touched only through UnsafeAtomic
    public static let pageSize: UInt64 = 4096
    private let words: [UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>]
    /// Pages per region, and the 64-bit words that hold them.
    public let pageCounts: [Int]
    private let wordCounts: [Int]

    init(regionSizes: [UInt64]) {
        pageCounts = regionSizes.map { Int(($0 + Self.pageSize - 1) / Self.pageSize) }
        wordCounts = pageCounts.map { ($0 + 63) / 64 }
        words = wordCounts.map { count in
            let storage = UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>.allocate(capacity: max(count, 1))
            storage.initialize(repeating: UnsafeAtomic<UInt64>.Storage(0), count: max(count, 1))
            return storage
        }
    }

    deinit {
        for (storage, count) in zip(words, wordCounts) {
            storage.deinitialize(count: max(count, 1))
            storage.deallocate()
        }
    }

    /// Marks the pages `length` bytes at `offset` into region `region` touch. The caller
    /// has checked that the range lies inside the region.
    @inline(__always)
    func mark(region: Int, offset: UInt64, length: Int) {
        guard length > 0 else { return }
        let first = Int(offset / Self.pageSize)
        let last = Int((offset + UInt64(length) - 1) / Self.pageSize)
        var page = first
        while page <= last {
            let bit: UInt64 = 1 << UInt64(page % 64)
            UnsafeAtomic(at: words[region] + page / 64).loadThenBitwiseOr(with: bit, ordering: .relaxed)
            page += 1
        }
    }

    /// The bitmap of region `region` (bit i of word w: page 64 w + i), cleared as it is read.
    public func take(region: Int) -> [UInt64] {
        (0..<wordCounts[region]).map { UnsafeAtomic(at: words[region] + $0).exchange(0, ordering: .acquiringAndReleasing) }
    }
}
