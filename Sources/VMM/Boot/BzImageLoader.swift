/// Loads a `bzImage` following the Linux x86 boot protocol (Documentation/arch/x86/boot.rst):
/// the protected-mode kernel after the real-mode setup sectors, placed at `pref_address`
/// with `init_size` bytes free from there, entered at +0x200 in long mode.
public enum BzImageLoader {
    static let headerMagicOffset = 0x202
    static let headerMagic: [UInt8] = Array("HdrS".utf8)
    static let minimumProtocol: UInt16 = 0x0206

    // Setup header offsets (relative to the start of the image / zero page).
    static let setupSectsOffset = 0x1F1
    static let bootFlagOffset = 0x1FE
    static let jumpOffset = 0x200
    static let versionOffset = 0x206
    static let loadflagsOffset = 0x211
    static let initrdAddrMaxOffset = 0x22C
    static let kernelAlignmentOffset = 0x230
    static let relocatableOffset = 0x234
    static let xloadflagsOffset = 0x236
    static let cmdlineSizeOffset = 0x238
    static let prefAddressOffset = 0x258
    static let initSizeOffset = 0x260

    static let loadedHigh: UInt8 = 0x01
    static let xlfKernel64: UInt16 = 0x01

    /// The fields of the setup header this VMM relies on.
    public struct SetupHeader: Equatable, Sendable {
        public var setupSects: Int
        public var version: UInt16
        public var loadflags: UInt8
        public var xloadflags: UInt16
        public var initrdAddressMax: UInt32
        public var kernelAlignment: UInt32
        public var relocatable: Bool
        public var cmdlineSize: UInt32
        public var prefAddress: UInt64
        public var initSize: UInt32
        /// Bytes of the header from 0x1f1 through its declared end (0x202 + byte at 0x201).
        public var rawHeader: [UInt8]

        /// Where the protected-mode kernel starts in the file.
        public var kernelOffset: Int { (setupSects + 1) * 512 }
    }

    public static func parseHeader(_ image: ByteReader) throws -> SetupHeader {
        guard image.count >= 0x268 else { throw KernelImageError.malformed("bzImage shorter than its setup header") }
        guard image.slice(headerMagicOffset, 4).map(Array.init) == headerMagic else {
            throw KernelImageError.notAKernel(reason: "no 'HdrS' signature at 0x202")
        }
        guard image.u16(bootFlagOffset) == 0xAA55 else { throw KernelImageError.malformed("boot_flag is not 0xAA55") }
        let version = try image.u16(at: versionOffset)
        guard version >= minimumProtocol else {
            throw KernelImageError.unsupported(
                "boot protocol \(version >> 8).\(String(format2: version & 0xFF)) is older than 2.06")
        }
        var setupSects = Int(try image.u8(at: setupSectsOffset))
        if setupSects == 0 { setupSects = 4 }
        let headerEnd = min(0x202 + Int(try image.u8(at: 0x201)), 0x290)
        let header = SetupHeader(
            setupSects: setupSects,
            version: version,
            loadflags: try image.u8(at: loadflagsOffset),
            xloadflags: version >= 0x020C ? try image.u16(at: xloadflagsOffset) : 0,
            initrdAddressMax: try image.u32(at: initrdAddrMaxOffset),
            kernelAlignment: try image.u32(at: kernelAlignmentOffset),
            relocatable: try image.u8(at: relocatableOffset) != 0,
            cmdlineSize: try image.u32(at: cmdlineSizeOffset),
            prefAddress: version >= 0x020A ? try image.u64(at: prefAddressOffset) : X86MemoryLayout.highMemoryStart,
            initSize: version >= 0x020A ? try image.u32(at: initSizeOffset) : 0,
            rawHeader: Array(try image.bytes(at: setupSectsOffset, count: headerEnd - setupSectsOffset)))
        guard header.kernelOffset < image.count else {
            throw KernelImageError.malformed("setup_sects (\(setupSects)) points past the end of the file")
        }
        return header
    }

    public static func load(_ image: ByteReader, into memory: GuestMemory) throws -> LoadedKernel {
        let header = try parseHeader(image)
        guard header.loadflags & loadedHigh != 0 else {
            throw KernelImageError.unsupported("zImage (not LOADED_HIGH): only bzImage kernels load at 1 MiB and above")
        }
        guard header.xloadflags & xlfKernel64 != 0 else {
            throw KernelImageError.unsupported("bzImage has no 64-bit entry point (XLF_KERNEL_64 not set)")
        }
        let payload = image.bytes[header.kernelOffset...]
        // The x86-64 decompressor moves itself up to LOAD_PHYSICAL_ADDR (pref_address) when
        // loaded lower and needs init_size bytes from there: loading anywhere but at
        // pref_address gains nothing, so the kernel goes there and must fit there.
        let loadAddress = header.prefAddress
        let footprint = max(UInt64(payload.count), UInt64(header.initSize))
        let alignment = max(UInt64(header.kernelAlignment), 0x1000)
        guard loadAddress >= X86MemoryLayout.highMemoryStart, loadAddress % alignment == 0 else {
            throw KernelImageError.unsupported("pref_address 0x\(String(loadAddress, radix: 16)) is below 1 MiB or not aligned to kernel_alignment")
        }
        guard footprint <= UInt64(Int.max), memory.contains(loadAddress, length: Int(footprint)) else {
            throw KernelImageError.doesNotFit(
                "kernel needs \(footprint >> 20) MiB (init_size) at 0x\(String(loadAddress, radix: 16)) but guest RAM is \(memory.totalSize >> 20) MiB")
        }
        try payload.withUnsafeBytes { try memory.write($0, at: loadAddress) }

        return LoadedKernel(format: .bzImage, linux64Entry: loadAddress + 0x200, pvhEntry: nil,
                            loadStart: loadAddress, loadEnd: loadAddress + footprint,
                            setupHeader: header.rawHeader,
                            initrdAddressMax: UInt64(header.initrdAddressMax),
                            cmdlineMaxLength: max(0, Int(header.cmdlineSize)))
    }
}

extension String {
    /// Two-digit decimal, for protocol minor versions ("2.06").
    init(format2 value: UInt16) {
        self = value < 10 ? "0\(value)" : "\(value)"
    }
}
