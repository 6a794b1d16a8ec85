import Foundation
import Glibc
import TestSupport
import Testing
@testable import VMM

/// Guest RAM from the hugetlb pool, which the test grows by a few pages and gives back.
@Suite struct HugePageMemoryTests {
    @Test func regionsComeFromThePoolAndAShortPoolFailsAtOnce() throws {
        try HugePagePool.with(pages: 8) {
            let reserved = try #require(HugePagePool.reservedPages)
            let memory = try GuestMemory(ranges: [(0, 8 << 20), (0x1_0000_0000, 4 << 20)], backing: .hugePages)
            #expect(memory.isShared)
            #expect(HugePagePool.reservedPages.map { $0 - reserved } == 6, "both regions reserve their 6 pages when mapped")
            for region in memory.regions {
                #expect(HugePagePool.kernelPageSizeKiB(containing: region.hostAddress) == 2048)
                try memory.store(UInt64(0xDEAD_BEEF), at: region.guestAddress + region.size - 8)
                #expect(try memory.load(UInt64.self, at: region.guestAddress + region.size - 8) == 0xDEAD_BEEF)
            }
            // Two pages left: 8 MiB more is refused when mapped, never a SIGBUS on first touch.
            #expect(throws: GuestMemoryError.allocationFailed(size: 8 << 20, errno: ENOMEM)) {
                _ = try GuestMemory(ranges: [(0, 8 << 20)], backing: .hugePages)
            }
        }
    }

    @Test func aRegionThatIsNotWholeHugePagesIsRefused() {
        #expect(throws: GuestMemoryError.notHugePageSized(size: 3 << 20)) {
            _ = try GuestMemory(ranges: [(0, 3 << 20)], backing: .hugePages)
        }
    }
}
