import Testing
@testable import VMM

@Suite struct DirectBootTests {
    static let kernel = TestImages.elf(entry: 0x100_0000, segments: [
        .init(paddr: 0x100_0000, data: [UInt8](repeating: 0x90, count: 0x1000), memorySize: 0x20_0000),
        .init(type: 4, paddr: 0, data: TestImages.pvhNote(entry: 0x100_0100)),
    ])

    @Test func linux64LayoutInGuestMemory() throws {
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 64 << 20))
        let initrd = (0..<10000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let boot = DirectBoot(kernel: Self.kernel, initrd: initrd, cmdline: "console=ttyS0 quiet", vcpuCount: 2)
        let result = try boot.load(into: memory)
        #expect(result.bootProtocol == .linux64)
        #expect(result.entry == 0x100_0000)
        // initrd: page aligned, as high as low RAM allows, intact
        let address = try #require(result.initrdAddress)
        #expect(address % 4096 == 0)
        #expect(address + UInt64(initrd.count) <= 64 << 20 && address + UInt64(initrd.count) > (64 << 20) - 4096)
        #expect(try memory.read(at: address, length: initrd.count) == initrd)
        // command line, NUL-terminated, pointed at by the zero page
        #expect(try memory.read(at: 0x20000, length: 20) == Array("console=ttyS0 quiet\0".utf8))
        #expect(try memory.load(UInt32.self, at: 0x7000 + 0x228) == 0x20000)
        #expect(try memory.load(UInt32.self, at: 0x7000 + 0x218) == UInt32(address))
        #expect(try memory.load(UInt32.self, at: 0x7000 + 0x21C) == UInt32(initrd.count))
        #expect(try memory.load(UInt8.self, at: 0x7000 + 0x1E8) == 4)
        #expect(try memory.load(UInt64.self, at: 0x7000 + 0x70) == 0xE0000)
        // GDT, page tables, MP table and RSDP in place
        #expect(try memory.load(UInt64.self, at: 0x500 + 0x10) == SegmentDescriptor.code64.descriptor)
        #expect(try memory.load(UInt64.self, at: 0x500 + 0x20) == SegmentDescriptor.tss.descriptor)  // not under the IDT
        #expect(try memory.read(at: X86MemoryLayout.idtAddress, length: 8) == [0, 0, 0, 0, 0, 0, 0, 0])
        #expect(X86MemoryLayout.idtAddress >= X86MemoryLayout.gdtAddress + UInt64(SegmentDescriptor.gdt(code: .code64).count * 8))
        #expect(try memory.load(UInt64.self, at: 0x9000) == 0xA003)
        #expect(try memory.read(at: 0x9FC00, length: 4) == Array("_MP_".utf8))
        #expect(try memory.read(at: 0xE0000, length: 8) == Array("RSD PTR ".utf8))
    }

    @Test func pvhLayoutInGuestMemory() throws {
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 64 << 20))
        let boot = DirectBoot(kernel: Self.kernel, initrd: [1, 2, 3], cmdline: "x", vcpuCount: 1, bootProtocol: .pvh)
        let result = try boot.load(into: memory)
        #expect(result.bootProtocol == .pvh && result.entry == 0x100_0100)
        #expect(try memory.load(UInt32.self, at: 0x6000) == PvhStartInfo.magic)
        #expect(try memory.load(UInt32.self, at: 0x6000 + 12) == 1)  // one module: the initrd
        #expect(try memory.load(UInt64.self, at: 0x6040) == result.initrdAddress)
        #expect(try memory.load(UInt64.self, at: 0x6048) == 3)
        #expect(try memory.load(UInt32.self, at: 0x6000 + 48) == 4)
        #expect(try memory.load(UInt64.self, at: 0x500 + 0x10) == SegmentDescriptor.code32.descriptor)
    }

    @Test func rejectsInputsThatCannotBeLaidOut() throws {
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 32 << 20))
        #expect(throws: DirectBootError.cmdlineTooLong(length: 3000, max: 2047)) {
            try DirectBoot(kernel: Self.kernel, cmdline: String(repeating: "a", count: 3000), vcpuCount: 1).load(into: memory)
        }
        #expect(throws: DirectBootError.cmdlineContainsNul) {
            try DirectBoot(kernel: Self.kernel, cmdline: "a\0b", vcpuCount: 1).load(into: memory)
        }
        // kernel ends at 18 MiB; 15 MiB of initrd cannot fit below 32 MiB
        do {
            _ = try DirectBoot(kernel: Self.kernel, initrd: [UInt8](repeating: 0, count: 15 << 20), cmdline: "",
                               vcpuCount: 1).load(into: memory)
            Issue.record("oversized initrd accepted")
        } catch let error as DirectBootError {
            #expect("\(error)".contains("guest memory too small"))
        }
        let noPvh = TestImages.elf(entry: 0x100_0000, segments: [.init(paddr: 0x100_0000, data: [0])])
        #expect(throws: DirectBootError.protocolUnsupported(.pvh, .elf64)) {
            try DirectBoot(kernel: noPvh, cmdline: "", vcpuCount: 1, bootProtocol: .pvh).load(into: memory)
        }
        let tiny = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 8 << 20))
        #expect(throws: KernelImageError.self) {
            try DirectBoot(kernel: Self.kernel, cmdline: "", vcpuCount: 1).load(into: tiny)
        }
    }
}
