/// Why a kernel image cannot be booted. Each case reads as one line for the user.
public enum KernelImageError: Error, CustomStringConvertible, Equatable {
    case notAKernel(reason: String)
    case malformed(String)
    case unsupported(String)
    case doesNotFit(String)

    public var description: String {
        switch self {
        case .notAKernel(let reason): return "not a kernel image: \(reason)"
        case .malformed(let what): return "malformed kernel image: \(what)"
        case .unsupported(let what): return "unsupported kernel image: \(what)"
        case .doesNotFit(let what): return "kernel does not fit in guest memory: \(what)"
        }
    }
}

/// How the vCPU enters the kernel.
public enum BootProtocol: String, Sendable, CaseIterable {
    /// 64-bit Linux boot protocol: long mode, identity page tables, boot_params in RSI.
    case linux64
    /// Xen PVH: 32-bit protected mode, paging off, hvm_start_info in EBX.
    case pvh
}

/// What loading a kernel into guest memory produced: where it can be entered and the
/// limits it declared for the other boot inputs.
public struct LoadedKernel: Sendable, Equatable {
    public enum Format: String, Sendable { case elf64 = "ELF64", elf32 = "ELF32", bzImage }
    public var format: Format
    /// Physical entry for the 64-bit boot protocol (`startup_64`).
    public var linux64Entry: UInt64?
    /// Physical 32-bit entry from the XEN_ELFNOTE_PHYS32_ENTRY note.
    public var pvhEntry: UInt32?
    /// Lowest and one-past-highest guest-physical bytes the kernel may use while booting.
    public var loadStart: UInt64
    public var loadEnd: UInt64
    /// The bzImage setup header (boot_params offset 0x1f1 onwards), copied to the zero page.
    public var setupHeader: [UInt8]?
    /// Highest address the kernel accepts for the initrd's last byte.
    public var initrdAddressMax: UInt64
    /// Longest command line the kernel accepts, without the terminating NUL.
    public var cmdlineMaxLength: Int

    /// The protocols this image supports, best first.
    public var supportedProtocols: [BootProtocol] {
        var protocols: [BootProtocol] = []
        if linux64Entry != nil { protocols.append(.linux64) }
        if pvhEntry != nil { protocols.append(.pvh) }
        return protocols
    }
}

/// Recognises a kernel image and loads it into guest memory.
public enum KernelImage {
    public static func load(_ image: [UInt8], into memory: GuestMemory) throws -> LoadedKernel {
        let reader = ByteReader(image)
        if reader.slice(0, 4).map(Array.init) == ElfLoader.magic {
            return try ElfLoader.load(reader, into: memory)
        }
        if reader.slice(BzImageLoader.headerMagicOffset, 4).map(Array.init) == BzImageLoader.headerMagic {
            return try BzImageLoader.load(reader, into: memory)
        }
        throw KernelImageError.notAKernel(
            reason: "neither an ELF file (vmlinux) nor a bzImage (no 'HdrS' signature at 0x202)")
    }
}
