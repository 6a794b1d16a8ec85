import Foundation
import TestSupport
import Testing
@testable import VMM

@Suite struct ElfLoaderTests {
    func memory(_ mib: UInt64 = 64) throws -> GuestMemory {
        try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: mib << 20))
    }

    @Test func loadsSegmentsAtTheirPhysicalAddressesAndZeroesBss() throws {
        let memory = try memory()
        try memory.write([UInt8](repeating: 0xAA, count: 16), at: 0x200004)  // stale bytes must be cleared
        let image = TestImages.elf(entry: 0x100010, segments: [
            .init(paddr: 0x100000, data: Array(0..<32)),
            .init(paddr: 0x200000, data: [1, 2, 3, 4], memorySize: 0x1000),
        ])
        let loaded = try KernelImage.load(image, into: memory)
        #expect(loaded.format == .elf64)
        #expect(loaded.linux64Entry == 0x100010)
        #expect(loaded.pvhEntry == nil)
        #expect(loaded.loadStart == 0x100000)
        #expect(loaded.loadEnd == 0x201000)
        #expect(try memory.read(at: 0x100000, length: 32) == Array(0..<32))
        #expect(try memory.read(at: 0x200000, length: 8) == [1, 2, 3, 4, 0, 0, 0, 0])
        #expect(try memory.read(at: 0x200004, length: 16) == [UInt8](repeating: 0, count: 16))
        #expect(loaded.supportedProtocols == [.linux64])
    }

    @Test(arguments: [4, 8])
    func findsThePvhNote(descriptorSize: Int) throws {
        let image = TestImages.elf(entry: 0x100000, segments: [
            .init(paddr: 0x100000, data: [UInt8](repeating: 0x90, count: 64)),
            .init(type: 4, paddr: 0, data: TestImages.pvhNote(entry: 0x100020, descriptorSize: descriptorSize)),
        ])
        let loaded = try KernelImage.load(image, into: try memory())
        #expect(loaded.pvhEntry == 0x100020)
        #expect(loaded.supportedProtocols == [.linux64, .pvh])
    }

    @Test func bootsA32BitElfOnlyThroughPvh() throws {
        let image = TestImages.elf(is64: false, entry: 0x100000, segments: [
            .init(paddr: 0x100000, data: [0xF4]),
            .init(type: 4, paddr: 0, data: TestImages.pvhNote(entry: 0x100000)),
        ])
        let loaded = try KernelImage.load(image, into: try memory())
        #expect(loaded.format == .elf32)
        #expect(loaded.supportedProtocols == [.pvh])
    }

    @Test func rejectsMalformedImages() throws {
        let memory = try memory()
        let good = TestImages.elf(entry: 0x100000, segments: [.init(paddr: 0x100000, data: [0x90])])
        func expectError(_ image: [UInt8], _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
            do {
                _ = try KernelImage.load(image, into: memory)
                Issue.record("loaded a bad image (\(fragment))", sourceLocation: sourceLocation)
            } catch {
                #expect("\(error)".contains(fragment), "\(error)", sourceLocation: sourceLocation)
            }
        }
        expectError([0x7F, 0x45, 0x4C, 0x46, 2, 1], "truncated")
        expectError([1, 2, 3, 4, 5, 6, 7, 8], "not a kernel image")
        expectError([], "not a kernel image")
        var bigEndian = good; bigEndian[5] = 2
        expectError(bigEndian, "big-endian")
        var wrongClass = good; wrongClass[4] = 9
        expectError(wrongClass, "ELF class")
        var relocatable = good; relocatable[16] = 1
        expectError(relocatable, "not an executable")
        expectError(TestImages.elf(machine: 183, entry: 0x100000, segments: [.init(paddr: 0x100000, data: [0])]), "machine 183")
        var noHeaders = good; noHeaders[0x38] = 0
        expectError(noHeaders, "0 program headers")
        var headersOutside = good; headersOutside[0x20] = 0xF0; headersOutside[0x21] = 0xFF
        expectError(headersOutside, "outside the file")
        var dataOutside = good; dataOutside[64 + 8] = 0xFF; dataOutside[64 + 9] = 0xFF
        expectError(dataOutside, "outside the file")
        expectError(TestImages.elf(entry: 0x1000, segments: [.init(paddr: 0x1000, data: [0])]), "below 1 MiB")
        expectError(TestImages.elf(entry: 0x100000, segments: [.init(paddr: 0x100000, data: [0], memorySize: 1 << 40)]),
                    "beyond guest RAM")
        expectError(TestImages.elf(entry: 0x100000, segments: [.init(paddr: UInt64.max - 1, data: [0, 0, 0])]),
                    "beyond guest RAM")
        expectError(TestImages.elf(entry: 0x500000, segments: [.init(paddr: 0x100000, data: [0])]), "entry point")
        expectError(TestImages.elf(entry: 0x100000, segments: [.init(paddr: 0x100000, data: [0, 0], memorySize: 1)]),
                    "exceeds its memory size")
        expectError(TestImages.elf(is64: false, entry: 0x100000, segments: [.init(paddr: 0x100000, data: [0])]),
                    "without a PVH entry note")
        expectError(TestImages.elf(entry: 0x100000, segments: [.init(type: 4, paddr: 0, data: [0])]), "no loadable segment")
        expectError(TestImages.elf(entry: 0x100000, segments: [
            .init(paddr: 0x100000, data: [0]),
            .init(type: 4, paddr: 0, data: TestImages.pvhNote(entry: 1 << 33, descriptorSize: 8)),
        ]), "above 4 GiB")
        expectError(TestImages.elf(entry: 0x100000, segments: [
            .init(paddr: 0x100000, data: [0]),
            .init(type: 4, paddr: 0, data: TestImages.pvhNote(entry: 0x900000)),
        ]), "PVH entry")
    }

    @Test func ignoresTruncatedNotes() throws {
        var note = TestImages.pvhNote(entry: 0x100000)
        note[20] = 0xFF  // name size of the Xen note far past the segment
        let image = TestImages.elf(entry: 0x100000, segments: [
            .init(paddr: 0x100000, data: [0]), .init(type: 4, paddr: 0, data: note),
        ])
        #expect(try KernelImage.load(image, into: try memory()).pvhEntry == nil)
    }

    @Test func loadsTheSharedLinuxKernel() throws {
        guard let vmlinux = try Fixtures.sharedKernel() else { try Fixtures.missing("shared/guest-kernel/vmlinux.xz") }
        let image = try [UInt8](Data(contentsOf: vmlinux))
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 256 << 20))
        let loaded = try KernelImage.load(image, into: memory)
        #expect(loaded.format == .elf64)
        #expect(loaded.loadStart == 0x100_0000)
        #expect(loaded.linux64Entry == 0x100_0123)  // startup_64, as `readelf -h` reports it
        #expect(loaded.pvhEntry == 0x100_0000)  // pvh_start_xen, from the Xen PHYS32_ENTRY note
        #expect(loaded.loadEnd == 0x1D2_7000 + 0x2F_1000)
        #expect(loaded.supportedProtocols == [.linux64, .pvh])
    }
}
