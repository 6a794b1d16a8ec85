import Glibc
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
}
