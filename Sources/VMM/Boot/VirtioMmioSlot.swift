/// Where one virtio-mmio device lives: its register window and its interrupt line. The
/// ACPI tables and the kernel command line describe the same slots.
public struct VirtioMmioSlot: Equatable, Sendable {
    public var base: UInt64
    public var gsi: UInt32
    /// The register window the guest is told about (virtio-mmio v2 needs 0x100 + config).
    public static let windowSize: UInt64 = 0x200

    public init(base: UInt64, gsi: UInt32) {
        self.base = base
        self.gsi = gsi
    }

    /// The `index`th slot: 4 KiB apart from 0xc0001000, interrupts from GSI 5.
    public init(index: Int) {
        self.init(base: X86MemoryLayout.virtioMmioStart + UInt64(index) * X86MemoryLayout.virtioMmioSlotSize,
                  gsi: X86MemoryLayout.virtioFirstGsi + UInt32(index))
    }

    /// The kernel command-line form: `virtio_mmio.device=<size>@<base>:<irq>`.
    public var kernelParameter: String {
        "virtio_mmio.device=\(Self.windowSize)@0x\(String(base, radix: 16)):\(gsi)"
    }
}
