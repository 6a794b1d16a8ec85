/// Where everything lives in guest-physical memory on x86-64. The values follow the
/// Linux boot protocol's conventions and those Firecracker and Cloud Hypervisor use, so
/// that kernels, tools and habits that know those VMMs find the same layout here.
public enum X86MemoryLayout {
    public static let kib: UInt64 = 1 << 10
    public static let mib: UInt64 = 1 << 20
    public static let gib: UInt64 = 1 << 30

    // Low-memory boot structures (all inside the first 640 KiB).
    public static let gdtAddress: UInt64 = 0x500
    /// Right after the six 8-byte GDT entries (null, null, code, data, 16-byte TSS).
    public static let idtAddress: UInt64 = 0x530
    public static let pvhStartInfoAddress: UInt64 = 0x6000
    public static let pvhModuleListAddress: UInt64 = 0x6040
    public static let pvhMemoryMapAddress: UInt64 = 0x6080
    public static let pvhMaxMemoryMapEntries = 128
    public static let zeroPageAddress: UInt64 = 0x7000
    public static let bootStackPointer: UInt64 = 0x8FF0
    public static let pml4Address: UInt64 = 0x9000
    public static let pdptAddress: UInt64 = 0xA000
    public static let pageDirectoriesAddress: UInt64 = 0xB000  // four pages: 0xB000-0xEFFF
    /// How much of the address space the boot page tables identity-map (with 2 MiB pages).
    public static let identityMappedSize: UInt64 = 4 * gib
    public static let cmdlineAddress: UInt64 = 0x20000
    public static let cmdlineMaxSize: UInt64 = 0x10000
    /// Top of conventional memory: the EBDA (holding the MP table) starts here.
    public static let ebdaStart: UInt64 = 0x9FC00
    public static let mpTableAddress: UInt64 = ebdaStart
    /// The BIOS read-only area; the ACPI tables (RSDP first, where Linux scans) live here.
    public static let biosAreaStart: UInt64 = 0xE0000
    public static let biosAreaEnd: UInt64 = 0x100000
    public static let rsdpAddress: UInt64 = biosAreaStart
    /// Kernels are loaded at or above 1 MiB.
    public static let highMemoryStart: UInt64 = 0x100000

    // The 32-bit hole: RAM stops at 3 GiB and resumes at 4 GiB.
    public static let mmioGapStart: UInt64 = 3 * gib
    public static let mmioGapEnd: UInt64 = 4 * gib
    /// Firecracker-compatible boot-timer device: the first page of the MMIO gap.
    public static let bootTimerAddress: UInt64 = mmioGapStart
    /// Where virtio-mmio devices are placed, one 4 KiB slot each.
    public static let virtioMmioStart: UInt64 = mmioGapStart + 0x1000
    public static let virtioMmioSlotSize: UInt64 = 0x1000
    /// First interrupt line for virtio-mmio devices (1 is the i8042's, 4 the UART's).
    public static let virtioFirstGsi: UInt32 = 5
    public static let ioapicAddress: UInt64 = 0xFEC0_0000
    public static let lapicAddress: UInt64 = 0xFEE0_0000
    /// KVM's private pages for Intel real-mode emulation (3 pages TSS + 1 identity map).
    public static let kvmIdentityMapAddress: UInt64 = 0xFFFB_C000
    public static let kvmTssAddress: UInt64 = 0xFFFB_D000

    /// Guest RAM ranges for `size` bytes: below the 32-bit MMIO gap first, the rest at 4 GiB.
    public static func ramRanges(size: UInt64) -> [(guestAddress: UInt64, size: UInt64)] {
        if size <= mmioGapStart { return [(0, size)] }
        return [(0, mmioGapStart), (mmioGapEnd, size - mmioGapStart)]
    }
}
