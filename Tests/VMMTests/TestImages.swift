@testable import VMM

/// Builders for small synthetic kernel images, so the loaders' every branch can be hit
/// with exactly the malformation a test wants.
enum TestImages {
    struct Segment {
        var type: UInt32 = 1
        var paddr: UInt64
        var data: [UInt8]
        var memorySize: UInt64? = nil
    }

    /// An ELF executable with the given segments (data laid out after the headers).
    static func elf(is64: Bool = true, machine: UInt16? = nil, entry: UInt64, segments: [Segment]) -> [UInt8] {
        let headerSize = is64 ? 64 : 52
        let phentsize = is64 ? 56 : 32
        var w = ByteWriter(size: headerSize + segments.count * phentsize)
        w.put([0x7F, 0x45, 0x4C, 0x46, is64 ? 2 : 1, 1, 1], at: 0)
        w.u16(2, at: 16)
        w.u16(machine ?? (is64 ? 62 : 3), at: 18)
        w.u32(1, at: 20)
        var dataOffset = headerSize + segments.count * phentsize
        if is64 {
            w.u64(entry, at: 0x18)
            w.u64(UInt64(headerSize), at: 0x20)
            w.u16(UInt16(phentsize), at: 0x36)
            w.u16(UInt16(segments.count), at: 0x38)
        } else {
            w.u32(UInt32(entry), at: 0x18)
            w.u32(UInt32(headerSize), at: 0x1C)
            w.u16(UInt16(phentsize), at: 0x2A)
            w.u16(UInt16(segments.count), at: 0x2C)
        }
        for (i, segment) in segments.enumerated() {
            let at = headerSize + i * phentsize
            let memorySize = segment.memorySize ?? UInt64(segment.data.count)
            if is64 {
                w.u32(segment.type, at: at)
                w.u64(UInt64(dataOffset), at: at + 8)
                w.u64(segment.paddr, at: at + 16)
                w.u64(segment.paddr, at: at + 24)
                w.u64(UInt64(segment.data.count), at: at + 32)
                w.u64(memorySize, at: at + 40)
            } else {
                w.u32(segment.type, at: at)
                w.u32(UInt32(dataOffset), at: at + 4)
                w.u32(UInt32(segment.paddr), at: at + 8)
                w.u32(UInt32(segment.paddr), at: at + 12)
                w.u32(UInt32(segment.data.count), at: at + 16)
                w.u32(UInt32(memorySize), at: at + 20)
            }
            w.put(segment.data, at: dataOffset)
            dataOffset += segment.data.count
        }
        return w.bytes
    }

    /// A PT_NOTE payload holding Xen's PHYS32_ENTRY note with a 4- or 8-byte descriptor.
    static func pvhNote(entry: UInt64, descriptorSize: Int = 4) -> [UInt8] {
        var w = ByteWriter(size: 0)
        // an unrelated note first, so the scanner must walk past it
        w.u32(4, at: 0); w.u32(4, at: 4); w.u32(3, at: 8); w.ascii("GNU\0", at: 12); w.u32(0xDEAD, at: 16)
        w.u32(4, at: 20); w.u32(UInt32(descriptorSize), at: 24); w.u32(18, at: 28); w.ascii("Xen\0", at: 32)
        if descriptorSize == 8 { w.u64(entry, at: 36) } else { w.u32(UInt32(entry), at: 36) }
        return w.bytes
    }

    /// A bzImage: `setupSects` real-mode sectors, then `payload` as the protected-mode kernel.
    static func bzImage(version: UInt16 = 0x020F, setupSects: UInt8 = 4, loadflags: UInt8 = 0x01,
                        xloadflags: UInt16 = 0x01, relocatable: Bool = true, prefAddress: UInt64 = 0x100_0000,
                        kernelAlignment: UInt32 = 0x20_0000, initSize: UInt32 = 0x10_0000,
                        initrdAddrMax: UInt32 = 0x7FFF_FFFF, cmdlineSize: UInt32 = 2047,
                        payload: [UInt8] = [UInt8](repeating: 0x90, count: 4096)) -> [UInt8] {
        var w = ByteWriter(size: (Int(setupSects) + 1) * 512)
        w.u8(setupSects, at: 0x1F1)
        w.u16(0xFFFF, at: 0x1FA)
        w.u16(0xAA55, at: 0x1FE)
        w.u8(0xEB, at: 0x200)
        w.u8(0x66, at: 0x201)  // header ends at 0x268
        w.ascii("HdrS", at: 0x202)
        w.u16(version, at: 0x206)
        w.u8(loadflags, at: 0x211)
        w.u32(initrdAddrMax, at: 0x22C)
        w.u32(kernelAlignment, at: 0x230)
        w.u8(relocatable ? 1 : 0, at: 0x234)
        w.u16(xloadflags, at: 0x236)
        w.u32(cmdlineSize, at: 0x238)
        w.u64(prefAddress, at: 0x258)
        w.u32(initSize, at: 0x260)
        w.append(payload)
        return w.bytes
    }
}
