import Testing
import VMM

/// The VMM's half of dirty-page tracking: every slice of guest RAM marks the pages it
/// covers, in the right region, and reading the bitmap clears it.
@Suite struct DirtyPageBitmapTests {
    @Test func slicesMarkTheirPagesAndReadingClears() throws {
        let memory = try GuestMemory(ranges: [(0, 1 << 20)])
        #expect(memory.dirtyPages == nil)
        let tracked = try GuestMemory(ranges: [(0, 1 << 20), (1 << 30, 1 << 20)], trackDirtyPages: true)
        _ = try tracked.slice(at: 4095, length: 2)  // two pages
        _ = try tracked.slice(at: (1 << 30) + 8192, length: 0)  // none
        try tracked.store(UInt32(7), at: (1 << 30) + 12_288)
        #expect(tracked.dirtyPages?.take(region: 0).first == 0b11)
        #expect(tracked.dirtyPages?.take(region: 1).first == 0b1000)
        #expect(tracked.dirtyPages?.take(region: 0).first == 0)
    }
}
