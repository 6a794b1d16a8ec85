/// Identity-mapped page tables for the 64-bit entry: one PML4, one PDPT and four page
/// directories of 2 MiB pages cover the first 4 GiB, so the kernel, zero page, command
/// line and initrd are all mapped wherever they were placed below 4 GiB.
public enum PageTables {
    static let present: UInt64 = 1 << 0
    static let writable: UInt64 = 1 << 1
    static let pageSize: UInt64 = 1 << 7

    /// (guest address, bytes) of every table page.
    public static func build() -> [(address: UInt64, bytes: [UInt8])] {
        let directories = Int(X86MemoryLayout.identityMappedSize / X86MemoryLayout.gib)
        var pml4 = ByteWriter(size: 4096)
        pml4.u64(X86MemoryLayout.pdptAddress | present | writable, at: 0)
        var pdpt = ByteWriter(size: 4096)
        var pages: [(UInt64, [UInt8])] = []
        for d in 0..<directories {
            let pdAddress = X86MemoryLayout.pageDirectoriesAddress + UInt64(d) * 4096
            pdpt.u64(pdAddress | present | writable, at: d * 8)
            var pd = ByteWriter(size: 4096)
            for e in 0..<512 {
                let physical = UInt64(d) * X86MemoryLayout.gib + UInt64(e) * 2 * X86MemoryLayout.mib
                pd.u64(physical | present | writable | pageSize, at: e * 8)
            }
            pages.append((pdAddress, pd.bytes))
        }
        return [(X86MemoryLayout.pml4Address, pml4.bytes), (X86MemoryLayout.pdptAddress, pdpt.bytes)] + pages
    }
}
