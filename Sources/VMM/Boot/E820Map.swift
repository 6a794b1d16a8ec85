/// The guest's physical memory map, as both the zero page (e820) and PVH
/// (hvm_memmap_table_entry) describe it. Type numbers are the e820 ones.
public struct E820Map: Equatable, Sendable {
    public enum Kind: UInt32, Sendable {
        case ram = 1
        case reserved = 2
        case acpi = 3
    }

    public struct Entry: Equatable, Sendable {
        public var address: UInt64
        public var size: UInt64
        public var kind: Kind
    }

    public var entries: [Entry]

    /// RAM split around the EBDA (MP table) and the BIOS area (ACPI tables) in the
    /// first megabyte, then the rest of low RAM and any RAM above 4 GiB.
    public init(memory: GuestMemory) {
        var entries: [Entry] = []
        for region in memory.regions {
            if region.guestAddress == 0 {
                entries.append(Entry(address: 0, size: X86MemoryLayout.ebdaStart, kind: .ram))
                entries.append(Entry(address: X86MemoryLayout.ebdaStart,
                                     size: 0xA0000 - X86MemoryLayout.ebdaStart, kind: .reserved))
                entries.append(Entry(address: X86MemoryLayout.biosAreaStart,
                                     size: X86MemoryLayout.biosAreaEnd - X86MemoryLayout.biosAreaStart, kind: .reserved))
                if region.end > X86MemoryLayout.highMemoryStart {
                    entries.append(Entry(address: X86MemoryLayout.highMemoryStart,
                                         size: region.end - X86MemoryLayout.highMemoryStart, kind: .ram))
                }
            } else {
                entries.append(Entry(address: region.guestAddress, size: region.size, kind: .ram))
            }
        }
        self.entries = entries
    }

    /// End of the RAM below the 32-bit MMIO gap.
    public var lowRamEnd: UInt64 {
        entries.filter { $0.kind == .ram && $0.address < X86MemoryLayout.mmioGapStart }
            .map { $0.address + $0.size }.max() ?? 0
    }
}
