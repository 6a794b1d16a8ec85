import Glibc
import TestSupport
import LinuxSupport
import Testing
@testable import VMM

@Suite struct GuestMemoryTests {
    @Test func smallMemoryIsOneRegionBelowTheGap() {
        let ranges = X86MemoryLayout.ramRanges(size: 128 << 20)
        #expect(ranges.count == 1)
        #expect(ranges[0].guestAddress == 0)
        #expect(ranges[0].size == 128 << 20)
    }

    @Test func largeMemorySplitsAroundTheMmioGap() {
        let ranges = X86MemoryLayout.ramRanges(size: 5 << 30)
        #expect(ranges.count == 2)
        #expect(ranges[0].guestAddress == 0 && ranges[0].size == 3 << 30)
        #expect(ranges[1].guestAddress == 4 << 30 && ranges[1].size == 2 << 30)
    }

    @Test func readsAndWritesLittleEndianInsideRegions() throws {
        let memory = try GuestMemory(ranges: [(0, 0x10000), (0x100000, 0x1000)])
        try memory.store(UInt32(0x1122_3344), at: 0x10)
        #expect(try memory.read(at: 0x10, length: 4) == [0x44, 0x33, 0x22, 0x11])
        #expect(try memory.load(UInt32.self, at: 0x10) == 0x1122_3344)
        try memory.write([1, 2, 3], at: 0x100FFD)
        #expect(try memory.read(at: 0x100FFD, length: 3) == [1, 2, 3])
        #expect(memory.totalSize == 0x11000)
    }

    @Test func refusesEveryAccessOutsideRam() throws {
        let memory = try GuestMemory(ranges: [(0, 0x10000), (0x20000, 0x10000)])
        // past the end, straddling a hole, in the hole, wrapping around, negative length
        #expect(throws: GuestMemoryError.self) { try memory.read(at: 0xFFFF, length: 2) }
        #expect(throws: GuestMemoryError.self) { try memory.read(at: 0x1FFFF, length: 2) }
        #expect(throws: GuestMemoryError.self) { try memory.write([0], at: 0x18000) }
        #expect(throws: GuestMemoryError.self) { try memory.read(at: UInt64.max - 1, length: 4) }
        #expect(throws: GuestMemoryError.self) { try memory.slice(at: 0, length: -1) }
        #expect(throws: GuestMemoryError.self) { try memory.load(UInt64.self, at: 0x2FFFC) }
        #expect(!memory.contains(0x10000, length: 1))
        #expect(memory.contains(0x2FFFF, length: 1))
        #expect(try memory.read(at: 0x10000, length: 0) == [])
    }

    @Test func rejectsOverlappingRegions() {
        #expect(throws: GuestMemoryError.overlappingRegions) {
            try GuestMemory(ranges: [(0, 0x2000), (0x1000, 0x2000)])
        }
    }

    /// What a vhost-user backend does with the memory table: maps each region's memfd
    /// itself. Its mapping and the VMM's must be the same pages, both ways.
    @Test func sharedMemfdRegionsAreTheSamePagesInAnotherMapping() throws {
        let memory = try GuestMemory(ranges: [(0, 0x10000), (0x100000, 0x4000)], backing: .sharedMemfd)
        #expect(memory.isShared)
        for region in memory.regions {
            #expect(region.fd >= 0)
            let other = try #require(mmap(nil, Int(region.size), PROT_READ | PROT_WRITE, MAP_SHARED, region.fd, 0))
            #expect(other != MAP_FAILED)
            defer { munmap(other, Int(region.size)) }
            try memory.store(UInt64(0x1122_3344_5566_7788) ^ region.guestAddress, at: region.guestAddress + 8)
            #expect(other.load(fromByteOffset: 8, as: UInt64.self) == UInt64(0x1122_3344_5566_7788) ^ region.guestAddress)
            other.storeBytes(of: UInt32(0xCAFE_F00D), toByteOffset: Int(region.size) - 4, as: UInt32.self)
            #expect(try memory.load(UInt32.self, at: region.guestAddress + region.size - 4) == 0xCAFE_F00D)
        }
        // The VMM's address of a guest range, as ring addresses are given to the backend.
        let second = memory.regions[1]
        #expect(memory.hostAddress(of: 0x100010, length: 16) == second.hostAddress + 0x10)
        #expect(memory.hostAddress(of: 0xFFF8, length: 16) == nil)  // runs past the first region
        #expect(memory.hostAddress(of: UInt64.max - 4, length: 16) == nil)
    }

    @Test func anonymousMemoryHasNoDescriptorToShare() throws {
        let memory = try GuestMemory(ranges: [(0, 0x10000)])
        #expect(!memory.isShared)
        #expect(memory.regions.allSatisfy { $0.fd < 0 })
    }

    /// The `THPeligible` flag smaps shows for the mapping that holds `address`.
    static func thpEligible(_ address: UInt) -> String? {
        guard let smaps = FileDescriptors.readText("/proc/self/smaps") else { return nil }
        var inside = false
        for line in smaps.split(separator: "\n") {
            if let dash = line.firstIndex(of: "-"), let space = line.firstIndex(of: " "), dash < space,
               let start = UInt(line[..<dash], radix: 16), let end = UInt(line[line.index(after: dash)..<space], radix: 16) {
                inside = (start..<end).contains(address)
            } else if inside, line.hasPrefix("THPeligible:") {
                return line.split(separator: " ").last.map(String.init)
            }
        }
        return nil
    }

    /// huge_pages "Transparent": the mapping is marked for transparent huge pages (the
    /// host's policy here is `madvise`, so without the advice it is not eligible).
    @Test func transparentHugePagesMarkTheMapping() throws {
        let policy = (try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8)) ?? ""
        guard policy.contains("[madvise]") else { try Fixtures.missing("transparent_hugepage/enabled = madvise") }
        let plain = try GuestMemory(ranges: [(0, 8 << 20)])
        let huge = try GuestMemory(ranges: [(0, 8 << 20)], transparentHugePages: true)
        #expect(Self.thpEligible(UInt(bitPattern: plain.regions[0].host)) == "0")
        #expect(Self.thpEligible(UInt(bitPattern: huge.regions[0].host)) == "1")
    }

    /// Balloon inflation and free page reporting: given-back pages read as zeroes and
    /// leave the resident set; unaligned or foreign ranges are refused.
    @Test func discardGivesPagesBack() throws {
        for backing in [GuestMemoryBacking.anonymous, .sharedMemfd] {
            let memory = try GuestMemory(ranges: [(0, 4 << 20)], backing: backing)
            try memory.write([UInt8](repeating: 0x5a, count: 8192), at: 0x10000)
            #expect(memory.discard(at: 0x10000, length: 4096))
            #expect(try memory.read(at: 0x10000, length: 4096).allSatisfy { $0 == 0 })
            #expect(try memory.read(at: 0x11000, length: 4096).allSatisfy { $0 == 0x5a })
            #expect(!memory.discard(at: 0x10001, length: 4096) && !memory.discard(at: 0x10000, length: 100))
            #expect(!memory.discard(at: 4 << 20, length: 4096) && !memory.discard(at: .max - 4095, length: 4096))
        }
    }
}
