import CKVM
import CLinux
import Testing
@testable import VMM

@Suite struct BootStructuresTests {
    func u32(_ bytes: [UInt8], _ at: Int) -> UInt32 { ByteReader(bytes).u32(at)! }
    func u64(_ bytes: [UInt8], _ at: Int) -> UInt64 { ByteReader(bytes).u64(at)! }

    @Test func e820MapAroundTheFirstMegabyteAndTheGap() throws {
        let small = E820Map(memory: try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 128 << 20)))
        #expect(small.entries == [
            .init(address: 0, size: 0x9FC00, kind: .ram),
            .init(address: 0x9FC00, size: 0x400, kind: .reserved),
            .init(address: 0xE0000, size: 0x20000, kind: .reserved),
            .init(address: 0x100000, size: (128 << 20) - 0x100000, kind: .ram),
        ])
        #expect(small.lowRamEnd == 128 << 20)
        let large = E820Map(memory: try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: (4 << 30) + (64 << 20))))
        #expect(large.entries.last == .init(address: 4 << 30, size: (1 << 30) + (64 << 20), kind: .ram))
        #expect(large.entries[3] == .init(address: 0x100000, size: (3 << 30) - 0x100000, kind: .ram))
        #expect(large.lowRamEnd == 3 << 30)
    }

    @Test func zeroPageFieldsAtTheBootProtocolOffsets() throws {
        let map = E820Map(memory: try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 128 << 20)))
        var params = BootParams(setupHeader: nil)
        params.setCmdline(address: 0x20000, length: 42)
        params.setRamdisk(address: 0x1_2345_6000, size: 0x1_0000_1000)
        params.setAcpiRsdp(0xE0000)
        params.setE820(map)
        let b = params.bytes
        #expect(b.count == 4096)
        #expect(u64(b, 0x070) == 0xE0000)  // acpi_rsdp_addr
        #expect(u32(b, 0x0C0) == 0x1)  // ext_ramdisk_image
        #expect(u32(b, 0x0C4) == 0x1)  // ext_ramdisk_size
        #expect(u32(b, 0x0C8) == 0)  // ext_cmd_line_ptr
        #expect(b[0x1E8] == 4)  // e820_entries
        #expect(ByteReader(b).u16(0x1FA) == 0xFFFF)  // vid_mode
        #expect(ByteReader(b).u16(0x1FE) == 0xAA55)  // boot_flag
        #expect(Array(b[0x202..<0x206]) == Array("HdrS".utf8))
        #expect(ByteReader(b).u16(0x206) == 0x020F)
        #expect(b[0x210] == 0xFF)  // type_of_loader
        #expect(b[0x211] == 0x01)  // loadflags: LOADED_HIGH
        #expect(u32(b, 0x218) == 0x2345_6000)  // ramdisk_image
        #expect(u32(b, 0x21C) == 0x1000)  // ramdisk_size
        #expect(u32(b, 0x228) == 0x20000)  // cmd_line_ptr
        #expect(u32(b, 0x230) == 0x100_0000)  // kernel_alignment
        #expect(u32(b, 0x238) == 42)  // cmdline_size
        // e820_table: 20-byte entries from 0x2d0
        #expect(u64(b, 0x2D0) == 0 && u64(b, 0x2D8) == 0x9FC00 && u32(b, 0x2E0) == 1)
        #expect(u64(b, 0x2E4) == 0x9FC00 && u64(b, 0x2EC) == 0x400 && u32(b, 0x2F4) == 2)
        #expect(u64(b, 0x2F8) == 0xE0000 && u64(b, 0x300) == 0x20000 && u32(b, 0x308) == 2)
        #expect(u64(b, 0x30C) == 0x100000 && u64(b, 0x314) == (128 << 20) - 0x100000 && u32(b, 0x31C) == 1)
        #expect(b[0x320..<0x400].allSatisfy { $0 == 0 })
    }

    @Test func zeroPageKeepsTheBzImageHeader() throws {
        let image = TestImages.bzImage(setupSects: 2)
        let header = try BzImageLoader.parseHeader(ByteReader(image))
        let params = BootParams(setupHeader: header.rawHeader)
        #expect(Array(params.bytes[0x1F1..<0x268]).enumerated().allSatisfy { i, byte in
            0x1F1 + i == 0x210 ? byte == 0xFF : byte == image[0x1F1 + i]
        })
    }

    @Test func pvhStartInfoLayout() throws {
        let map = E820Map(memory: try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 64 << 20)))
        var info = PvhStartInfo(memoryMap: map)
        info.cmdlineAddress = 0x20000
        info.rsdpAddress = 0xE0000
        info.modules = [(0x3F0_0000, 0x1234)]
        let s = info.startInfoBytes(moduleListAddress: 0x6040, memoryMapAddress: 0x6080)
        #expect(s.count == 56)
        #expect(u32(s, 0) == 0x336E_C578 && u32(s, 4) == 1 && u32(s, 8) == 0 && u32(s, 12) == 1)
        #expect(u64(s, 16) == 0x6040 && u64(s, 24) == 0x20000 && u64(s, 32) == 0xE0000 && u64(s, 40) == 0x6080)
        #expect(u32(s, 48) == 4)
        let modules = info.moduleListBytes
        #expect(modules.count == 32 && u64(modules, 0) == 0x3F0_0000 && u64(modules, 8) == 0x1234 && u64(modules, 16) == 0)
        let memmap = info.memoryMapBytes
        #expect(memmap.count == 4 * 24)
        #expect(u64(memmap, 72) == 0x100000 && u64(memmap, 80) == (64 << 20) - 0x100000 && u32(memmap, 88) == 1)
        #expect(X86MemoryLayout.pvhModuleListAddress >= X86MemoryLayout.pvhStartInfoAddress + 56)
        #expect(X86MemoryLayout.pvhMemoryMapAddress >= X86MemoryLayout.pvhModuleListAddress + 32)
        #expect(X86MemoryLayout.pvhMemoryMapAddress + UInt64(X86MemoryLayout.pvhMaxMemoryMapEntries * 24) <= X86MemoryLayout.zeroPageAddress + 0x1000)
    }

    @Test func pageTablesIdentityMapFourGiB() {
        let pages = PageTables.build()
        #expect(pages.count == 6)
        let pml4 = pages[0], pdpt = pages[1]
        #expect(pml4.address == 0x9000 && u64(pml4.bytes, 0) == 0xA003 && u64(pml4.bytes, 8) == 0)
        #expect(pdpt.address == 0xA000)
        for d in 0..<4 {
            #expect(u64(pdpt.bytes, d * 8) == 0xB003 + UInt64(d) * 0x1000)
            let pd = pages[2 + d]
            #expect(pd.address == 0xB000 + UInt64(d) * 0x1000)
            #expect(u64(pd.bytes, 0) == UInt64(d) << 30 | 0x83)
            #expect(u64(pd.bytes, 511 * 8) == (UInt64(d) << 30) + 511 * (2 << 20) | 0x83)
        }
        // Tables sit between the boot stack and the command line, clear of the zero page.
        #expect(pages.allSatisfy { $0.address >= X86MemoryLayout.bootStackPointer && $0.address + 0x1000 <= X86MemoryLayout.cmdlineAddress })
    }

    @Test func gdtDescriptorsMatchTheBootProtocol() {
        #expect(SegmentDescriptor.code64.descriptor == 0x00AF_9B00_0000_FFFF)
        #expect(SegmentDescriptor.code32.descriptor == 0x00CF_9B00_0000_FFFF)
        #expect(SegmentDescriptor.data.descriptor == 0x00CF_9300_0000_FFFF)
        #expect(SegmentDescriptor.tss.descriptor == 0x0000_8B00_0000_0067)
        let gdt = SegmentDescriptor.gdt(code: .code64)
        #expect(gdt[2] == SegmentDescriptor.code64.descriptor)  // __BOOT_CS = 0x10
        #expect(gdt[3] == SegmentDescriptor.data.descriptor)  // __BOOT_DS = 0x18
        let cs = SegmentDescriptor.code64.kvmSegment
        #expect(cs.selector == 0x10 && cs.limit == 0xFFFF_FFFF && cs.l == 1 && cs.db == 0 && cs.s == 1 && cs.present == 1)
        let ds = SegmentDescriptor.data.kvmSegment
        #expect(ds.selector == 0x18 && ds.type == 3 && ds.db == 1 && ds.g == 1)
        let tr = SegmentDescriptor.tss.kvmSegment
        #expect(tr.selector == 0x20 && tr.limit == 0x67 && tr.s == 0 && tr.type == 0xB)
    }

    @Test func vcpuStateForEachProtocol() {
        let long = VcpuBootState(bootProtocol: .linux64, entry: 0x100_0000)
        #expect(long.regs.rip == 0x100_0000 && long.regs.rsi == 0x7000 && long.regs.rsp == 0x8FF0 && long.regs.rflags == 2)
        let ls = long.sregs(from: .init())
        #expect(ls.cr0 & 0x8000_0001 == 0x8000_0001 && ls.cr4 == 0x20 && ls.cr3 == 0x9000 && ls.efer == 0x500)
        #expect(ls.cs.l == 1 && ls.gdt.base == 0x500 && ls.gdt.limit == 47)
        #expect(ls.idt.base == 0x530)  // clear of the GDT: 0x500 + 48
        let pvh = VcpuBootState(bootProtocol: .pvh, entry: 0x1_0000)
        #expect(pvh.regs.rbx == 0x6000 && pvh.regs.rip == 0x1_0000 && pvh.regs.rsi == 0)
        let ps = pvh.sregs(from: .init())
        #expect(ps.cr0 & 0x8000_0001 == 1 && ps.cr4 == 0 && ps.efer == 0 && ps.cs.db == 1 && ps.cs.l == 0)
        #expect(ps.tr.limit == 0x67)
        #expect(VcpuBootState.fpu.fcw == 0x37F && VcpuBootState.fpu.mxcsr == 0x1F80)
        // MTRRdefType follows CPUID (KVM never lists it), the others KVM's MSR list.
        let mtrr = [CpuidEntry(function: 1, edx: 1 << 12)]
        let msrs = VcpuBootState.msrs(supported: [0x174, 0x1A0], cpuid: mtrr)
        #expect(msrs.map(\.index) == [0x174, 0x1A0, 0x2FF])
        #expect(msrs.last?.value == 0x806)
        #expect(VcpuBootState.msrs(supported: [0x174, 0x2FF], cpuid: []).map(\.index) == [0x174])
    }

    @Test func lapicLintsAreVirtualWire() {
        var lapic = kvm_lapic_state()
        withUnsafeMutableBytes(of: &lapic.regs) { $0.storeBytes(of: UInt32(0x10700), toByteOffset: 0x350, as: UInt32.self) }
        let set = VcpuBootState.lapic(from: lapic)
        withUnsafeBytes(of: set.regs) { regs in
            #expect(regs.load(fromByteOffset: 0x350, as: UInt32.self) == 0x10700)  // mask kept, ExtINT
            #expect(regs.load(fromByteOffset: 0x360, as: UInt32.self) == 0x400)  // NMI
        }
    }
}
