/// The Linux "zero page" (`struct boot_params`), built byte by byte at the offsets that
/// Documentation/arch/x86/zero-page.rst and boot.rst give.
public struct BootParams {
    public static let size = 4096

    // struct boot_params offsets
    public static let acpiRsdpAddrOffset = 0x070
    public static let extRamdiskImageOffset = 0x0C0
    public static let extRamdiskSizeOffset = 0x0C4
    public static let extCmdLinePtrOffset = 0x0C8
    public static let e820EntriesOffset = 0x1E8
    public static let setupHeaderOffset = 0x1F1
    public static let e820TableOffset = 0x2D0
    public static let e820MaxEntries = 128
    // struct setup_header offsets (absolute within boot_params)
    public static let vidModeOffset = 0x1FA
    public static let bootFlagOffset = 0x1FE
    public static let headerOffset = 0x202
    public static let versionOffset = 0x206
    public static let typeOfLoaderOffset = 0x210
    public static let loadflagsOffset = 0x211
    public static let ramdiskImageOffset = 0x218
    public static let ramdiskSizeOffset = 0x21C
    public static let cmdLinePtrOffset = 0x228
    public static let kernelAlignmentOffset = 0x230
    public static let cmdlineSizeOffset = 0x238

    /// "Undefined" boot loader ID: we have no ID assigned by the boot protocol maintainers.
    public static let typeOfLoaderUndefined: UInt8 = 0xFF

    public private(set) var writer = ByteWriter(size: BootParams.size)

    /// Starts from the kernel's own setup header (bzImage) or a synthesised one (vmlinux,
    /// which carries no header: the values below are what the header of the same kernel holds).
    public init(setupHeader: [UInt8]?) {
        if let setupHeader {
            writer.put(setupHeader.prefix(Self.size - Self.setupHeaderOffset), at: Self.setupHeaderOffset)
        } else {
            writer.u16(0xFFFF, at: Self.vidModeOffset)  // "normal" video mode
            writer.u16(0xAA55, at: Self.bootFlagOffset)
            writer.ascii("HdrS", at: Self.headerOffset)
            writer.u16(0x020F, at: Self.versionOffset)
            writer.u8(0x01, at: Self.loadflagsOffset)  // LOADED_HIGH
            writer.u32(0x0100_0000, at: Self.kernelAlignmentOffset)
        }
        writer.u8(Self.typeOfLoaderUndefined, at: Self.typeOfLoaderOffset)
    }

    public var bytes: [UInt8] { writer.bytes }

    public mutating func setCmdline(address: UInt64, length: Int) {
        writer.u32(UInt32(truncatingIfNeeded: address), at: Self.cmdLinePtrOffset)
        writer.u32(UInt32(truncatingIfNeeded: address >> 32), at: Self.extCmdLinePtrOffset)
        writer.u32(UInt32(length), at: Self.cmdlineSizeOffset)
    }

    public mutating func setRamdisk(address: UInt64, size: UInt64) {
        writer.u32(UInt32(truncatingIfNeeded: address), at: Self.ramdiskImageOffset)
        writer.u32(UInt32(truncatingIfNeeded: size), at: Self.ramdiskSizeOffset)
        writer.u32(UInt32(truncatingIfNeeded: address >> 32), at: Self.extRamdiskImageOffset)
        writer.u32(UInt32(truncatingIfNeeded: size >> 32), at: Self.extRamdiskSizeOffset)
    }

    public mutating func setAcpiRsdp(_ address: UInt64) {
        writer.u64(address, at: Self.acpiRsdpAddrOffset)
    }

    /// Writes the e820 table; the zero page holds at most 128 entries.
    public mutating func setE820(_ map: E820Map) {
        let entries = map.entries.prefix(Self.e820MaxEntries)
        writer.u8(UInt8(entries.count), at: Self.e820EntriesOffset)
        for (i, entry) in entries.enumerated() {
            let at = Self.e820TableOffset + i * 20
            writer.u64(entry.address, at: at)
            writer.u64(entry.size, at: at + 8)
            writer.u32(entry.kind.rawValue, at: at + 16)
        }
    }
}
