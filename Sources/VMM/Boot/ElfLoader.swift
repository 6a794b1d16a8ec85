/// Loads an ELF kernel (`vmlinux`, or a 32-bit freestanding guest) by its PT_LOAD
/// segments at their physical addresses, and finds the PVH entry note.
public enum ElfLoader {
    static let magic: [UInt8] = [0x7F, 0x45, 0x4C, 0x46]
    static let ptLoad: UInt32 = 1
    static let ptNote: UInt32 = 4
    static let xenElfNotePhys32Entry: UInt32 = 18
    static let maxProgramHeaders = 128

    struct Segment {
        var type: UInt32
        var offset: UInt64
        var paddr: UInt64
        var fileSize: UInt64
        var memorySize: UInt64
    }

    /// Linux x86-64's default initrd limit and command-line size, which a vmlinux cannot state.
    static let defaultInitrdAddressMax: UInt64 = 0x7FFF_FFFF
    static let defaultCmdlineMaxLength = 2047

    public static func load(_ image: ByteReader, into memory: GuestMemory) throws -> LoadedKernel {
        guard let elfClass = image.u8(4), let data = image.u8(5) else {
            throw KernelImageError.malformed("ELF header truncated")
        }
        guard data == 1 else { throw KernelImageError.unsupported("big-endian ELF") }
        let is64: Bool
        switch elfClass {
        case 1: is64 = false
        case 2: is64 = true
        default: throw KernelImageError.malformed("unknown ELF class \(elfClass)")
        }
        guard image.count >= (is64 ? 64 : 52), let type = image.u16(16), let machine = image.u16(18) else {
            throw KernelImageError.malformed("ELF header truncated")
        }
        guard type == 2 else { throw KernelImageError.unsupported("ELF type \(type) is not an executable") }
        guard machine == (is64 ? 62 : 3) else {
            throw KernelImageError.unsupported("ELF machine \(machine) is not \(is64 ? "x86-64" : "i386")")
        }
        let entry: UInt64
        let phoff: UInt64
        let phentsize: Int
        let phnum: Int
        if is64 {
            entry = try image.u64(at: 0x18)
            phoff = try image.u64(at: 0x20)
            phentsize = Int(try image.u16(at: 0x36))
            phnum = Int(try image.u16(at: 0x38))
        } else {
            entry = UInt64(try image.u32(at: 0x18))
            phoff = UInt64(try image.u32(at: 0x1C))
            phentsize = Int(try image.u16(at: 0x2A))
            phnum = Int(try image.u16(at: 0x2C))
        }
        guard phentsize >= (is64 ? 56 : 32) else { throw KernelImageError.malformed("program header size \(phentsize)") }
        guard phnum > 0, phnum <= maxProgramHeaders else { throw KernelImageError.malformed("\(phnum) program headers") }
        guard phoff <= UInt64(image.count), image.has(Int(phoff), phnum * phentsize) else {
            throw KernelImageError.malformed("program headers lie outside the file")
        }

        var segments: [Segment] = []
        for i in 0..<phnum {
            let at = Int(phoff) + i * phentsize
            if is64 {
                segments.append(Segment(type: try image.u32(at: at), offset: try image.u64(at: at + 8), paddr: try image.u64(at: at + 24),
                                        fileSize: try image.u64(at: at + 32), memorySize: try image.u64(at: at + 40)))
            } else {
                segments.append(Segment(type: try image.u32(at: at), offset: UInt64(try image.u32(at: at + 4)),
                                        paddr: UInt64(try image.u32(at: at + 12)), fileSize: UInt64(try image.u32(at: at + 16)),
                                        memorySize: UInt64(try image.u32(at: at + 20))))
            }
        }

        var loadStart = UInt64.max
        var loadEnd: UInt64 = 0
        var pvhEntry: UInt32?
        for segment in segments {
            guard segment.offset <= UInt64(image.count), segment.fileSize <= UInt64(image.count) - segment.offset else {
                throw KernelImageError.malformed("segment data at file offset 0x\(String(segment.offset, radix: 16)) lies outside the file")
            }
            switch segment.type {
            case ptLoad:
                try loadSegment(segment, from: image, into: memory)
                loadStart = min(loadStart, segment.paddr)
                loadEnd = max(loadEnd, segment.paddr + segment.memorySize)
            case ptNote:
                if let found = try pvhNote(in: try image.bytes(at: Int(segment.offset), count: Int(segment.fileSize))) {
                    pvhEntry = found
                }
            default:
                continue
            }
        }
        guard loadEnd > 0 else { throw KernelImageError.malformed("no loadable segment") }

        var linux64Entry: UInt64?
        if is64 {
            guard entry >= loadStart, entry < loadEnd else {
                throw KernelImageError.malformed("entry point 0x\(String(entry, radix: 16)) is outside the loaded segments")
            }
            linux64Entry = entry
        }
        if let pvhEntry, UInt64(pvhEntry) < loadStart || UInt64(pvhEntry) >= loadEnd {
            throw KernelImageError.malformed("PVH entry 0x\(String(pvhEntry, radix: 16)) is outside the loaded segments")
        }
        if linux64Entry == nil && pvhEntry == nil {
            throw KernelImageError.unsupported("32-bit ELF without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) cannot be booted")
        }
        return LoadedKernel(format: is64 ? .elf64 : .elf32, linux64Entry: linux64Entry, pvhEntry: pvhEntry,
                            loadStart: loadStart, loadEnd: loadEnd, setupHeader: nil,
                            initrdAddressMax: defaultInitrdAddressMax, cmdlineMaxLength: defaultCmdlineMaxLength)
    }

    static func loadSegment(_ segment: Segment, from image: ByteReader, into memory: GuestMemory) throws {
        guard segment.fileSize <= segment.memorySize else {
            throw KernelImageError.malformed("segment file size exceeds its memory size")
        }
        guard segment.paddr >= X86MemoryLayout.highMemoryStart else {
            throw KernelImageError.unsupported("segment at 0x\(String(segment.paddr, radix: 16)) is below 1 MiB, where the boot structures live")
        }
        let (end, overflow) = segment.paddr.addingReportingOverflow(segment.memorySize)
        guard !overflow, segment.memorySize <= UInt64(Int.max),
              memory.contains(segment.paddr, length: Int(segment.memorySize)) else {
            throw KernelImageError.doesNotFit(
                "segment 0x\(String(segment.paddr, radix: 16))-0x\(String(end, radix: 16)) is beyond guest RAM (\(memory.totalSize >> 20) MiB)")
        }
        let target = try memory.slice(at: segment.paddr, length: Int(segment.memorySize))
        let source = try image.bytes(at: Int(segment.offset), count: Int(segment.fileSize))
        source.withUnsafeBytes { target.copyMemory(from: $0) }
        if segment.memorySize > segment.fileSize {
            try memory.zero(at: segment.paddr + segment.fileSize, length: Int(segment.memorySize - segment.fileSize))
        }
    }

    /// Scans one PT_NOTE segment for the "Xen" PHYS32_ENTRY note.
    static func pvhNote(in notes: ArraySlice<UInt8>) throws -> UInt32? {
        let reader = ByteReader(Array(notes))
        var offset = 0
        func align4(_ n: Int) -> Int { (n + 3) & ~3 }
        while reader.has(offset, 12) {
            let nameSize = Int(try reader.u32(at: offset))
            let descSize = Int(try reader.u32(at: offset + 4))
            let type = try reader.u32(at: offset + 8)
            let nameAt = offset + 12
            guard nameSize <= reader.count, descSize <= reader.count else { break }
            let descAt = nameAt + align4(nameSize)
            guard reader.has(nameAt, nameSize), reader.has(descAt, descSize) else { break }
            let name = try reader.bytes(at: nameAt, count: nameSize)
            if type == xenElfNotePhys32Entry, Array(name.prefix(3)) == Array("Xen".utf8) {
                switch descSize {
                case 4: return try reader.u32(at: descAt)
                case 8:
                    let value = try reader.u64(at: descAt)
                    guard value <= UInt64(UInt32.max) else {
                        throw KernelImageError.malformed("PVH entry 0x\(String(value, radix: 16)) is above 4 GiB")
                    }
                    return UInt32(value)
                default:
                    throw KernelImageError.malformed("PVH entry note of \(descSize) bytes")
                }
            }
            offset = descAt + align4(descSize)
        }
        return nil
    }
}
