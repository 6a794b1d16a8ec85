import Foundation
import TestSupport
import Testing
@testable import VMM

@Suite struct MpTableTests {
    @Test(arguments: [1, 2, 8, 32])
    func checksumsAndEntries(vcpus: Int) {
        let bytes = MpTable.build(vcpuCount: vcpus)
        let r = ByteReader(bytes)
        #expect(bytes.count == MpTable.size(vcpuCount: vcpus))
        #expect(bytes.count <= MpTable.maxSize)
        #expect(Array(bytes[0..<4]) == Array("_MP_".utf8))
        #expect(bytes[0..<16].reduce(UInt8(0), &+) == 0)
        #expect(r.u32(4) == UInt32(X86MemoryLayout.mpTableAddress) + 16)
        let table = Array(bytes[16...])
        let t = ByteReader(table)
        #expect(Array(table[0..<4]) == Array("PCMP".utf8))
        #expect(Int(t.u16(4)!) == table.count)
        #expect(table.reduce(UInt8(0), &+) == 0)
        #expect(Int(t.u16(34)!) == vcpus + 1 + 1 + 24 + 2)
        #expect(t.u32(36) == 0xFEE0_0000)
        // processors first, BSP flagged
        for cpu in 0..<vcpus {
            let at = 44 + cpu * 20
            #expect(table[at] == 0 && Int(table[at + 1]) == cpu && table[at + 3] == (cpu == 0 ? 3 : 1))
        }
        let ioapic = 44 + vcpus * 20 + 8
        #expect(table[ioapic] == 2 && Int(table[ioapic + 1]) == vcpus && t.u32(ioapic + 4) == 0xFEC0_0000)
    }
}

@Suite struct AcpiTablesTests {
    @Test func tablesHaveValidChecksumsAndPointers() throws {
        let pieces = AcpiTables(vcpuCount: 4).build()
        #expect(pieces.allSatisfy { $0.address >= X86MemoryLayout.biosAreaStart && $0.address + UInt64($0.bytes.count) <= X86MemoryLayout.biosAreaEnd })
        let rsdp = pieces[0].bytes
        #expect(Array(rsdp[0..<8]) == Array("RSD PTR ".utf8))
        #expect(rsdp[0..<20].reduce(UInt8(0), &+) == 0 && rsdp.reduce(UInt8(0), &+) == 0)
        for piece in pieces.dropFirst() {
            #expect(Int(ByteReader(piece.bytes).u32(4)!) == piece.bytes.count)
            #expect(piece.bytes.reduce(UInt8(0), &+) == 0)
        }
        let byAddress = Dictionary(uniqueKeysWithValues: pieces.map { ($0.address, $0.bytes) })
        let xsdt = try #require(byAddress[ByteReader(rsdp).u64(24)!])
        #expect(String(decoding: xsdt[0..<4], as: UTF8.self) == "XSDT")
        let signatures = stride(from: 36, to: xsdt.count, by: 8).map { at -> String in
            let table = byAddress[ByteReader(xsdt).u64(at)!] ?? []
            return String(decoding: table.prefix(4), as: UTF8.self)
        }
        #expect(signatures == ["FACP", "APIC"])
        let fadt = pieces.first { $0.bytes.starts(with: Array("FACP".utf8)) }!.bytes
        #expect(fadt.count == 276)
        #expect(ByteReader(fadt).u32(112)! & (1 << 20) != 0)  // HW_REDUCED_ACPI
        #expect(String(decoding: byAddress[ByteReader(fadt).u64(140)!]!.prefix(4), as: UTF8.self) == "DSDT")
        let madt = pieces.first { $0.bytes.starts(with: Array("APIC".utf8)) }!.bytes
        #expect(madt.count == 44 + 4 * 8 + 12 + 6)
    }

    /// iasl (Debian's acpica-tools) must disassemble every table without errors.
    @Test func iaslDisassemblesEveryTable() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/iasl") else { try Fixtures.missing("iasl (apt-get install acpica-tools)") }
        let dir = Fixtures.scratch.appendingPathComponent("acpi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let slots = (0..<3).map { VirtioMmioSlot(index: $0) }
        for piece in AcpiTables(vcpuCount: 2, virtioSlots: slots).build().dropFirst() {
            let name = String(decoding: piece.bytes.prefix(4), as: UTF8.self)
            let file = dir.appendingPathComponent("\(name).dat")
            try Data(piece.bytes).write(to: file)
            let result = try Command.run("/usr/bin/iasl", ["-d", file.path])
            #expect(result.status == 0, "\(name): \(result.stdout)\(result.stderr)")
            let dsl = try String(contentsOf: dir.appendingPathComponent("\(name).dsl"), encoding: .utf8)
            #expect(!dsl.contains("Invalid") && !dsl.contains("Error"), "\(name):\n\(dsl)")
            if name == "DSDT" {
                #expect(dsl.contains("Name (_S5, Package (0x04)"))
                #expect(dsl.contains("EisaId (\"PNP0501\")") && dsl.contains("0x03F8") && dsl.contains("{4}"))
                #expect(dsl.contains("EisaId (\"PNP0303\")") && dsl.contains("{1}"))
                // One LNRO0005 virtio-mmio device per slot, with its window and edge interrupt.
                #expect(dsl.components(separatedBy: "Name (_HID, \"LNRO0005\")").count - 1 == 3, "\(dsl)")
                for (i, slot) in slots.enumerated() {
                    #expect(dsl.contains("Device (V00\(i))"))
                    #expect(dsl.contains("0x\(String(slot.base, radix: 16, uppercase: true)),         // Address Base"), "\(dsl)")
                    #expect(dsl.contains("0x0000000\(String(slot.gsi, radix: 16, uppercase: true)),"), "\(dsl)")
                }
                #expect(dsl.contains("Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )"), "\(dsl)")
            }
            if name == "FACP" { #expect(dsl.contains("Hardware Reduced (V5) : 1")) }
            if name == "APIC" { #expect(dsl.components(separatedBy: "Processor Local APIC").count - 1 == 2) }
        }
    }
}

@Suite struct AmlTests {
    @Test func packageLengthEncodings() {
        #expect(Aml.packageLength(0) == [0x01])
        #expect(Aml.packageLength(0x3E) == [0x3F])
        #expect(Aml.packageLength(0x3F) == [0x41, 0x04])  // 0x41 total: two bytes
        #expect(Aml.packageLength(0xFFD) == [0x4F, 0xFF])
        #expect(Aml.packageLength(0xFFE) == [0x81, 0x00, 0x01])  // 0x1001 total: three bytes
    }

    @Test func namesIntegersAndIds() {
        #expect(Aml.nameString("_S5") == Array("_S5_".utf8))
        #expect(Aml.nameString("\\_SB") == [0x5C] + Array("_SB_".utf8))
        #expect(Aml.nameString("\\_SB.COM1") == [0x5C, 0x2E] + Array("_SB_COM1".utf8))
        #expect(Aml.integer(0).bytes == [0x00])
        #expect(Aml.integer(1).bytes == [0x01])
        #expect(Aml.integer(5).bytes == [0x0A, 5])
        #expect(Aml.integer(0x3F8).bytes == [0x0B, 0xF8, 0x03])
        #expect(Aml.integer(0xC000_1000).bytes == [0x0C, 0x00, 0x10, 0x00, 0xC0])
        #expect(Aml.integer(1 << 32).bytes == [0x0E, 0, 0, 0, 0, 1, 0, 0, 0])
        #expect(Aml.eisaId("PNP0501").bytes == [0x0C, 0x41, 0xD0, 0x05, 0x01])
        #expect(Aml.eisaId("PNP0303").bytes == [0x0C, 0x41, 0xD0, 0x03, 0x03])
        #expect(Aml.string("LNRO0005").bytes == [0x0D] + Array("LNRO0005".utf8) + [0])
    }

    @Test func resourceTemplate() {
        let template = Aml.resourceTemplate([.io(0x3F8, length: 8), .irqNoFlags(4)])
        #expect(template.bytes == [0x11, 0x10, 0x0A, 0x0D,
                                   0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x01, 0x08,
                                   0x22, 0x10, 0x00,
                                   0x79, 0x00])
        #expect(Aml.Resource.memory32Fixed(0xC000_1000, length: 0x1000).bytes
            == [0x86, 0x09, 0x00, 0x01, 0x00, 0x10, 0x00, 0xC0, 0x00, 0x10, 0x00, 0x00])
        #expect(Aml.Resource.interrupt(5).bytes == [0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00])
    }
}

@Suite struct VirtioMmioSlotTests {
    @Test func slotsAndKernelParameters() {
        let first = VirtioMmioSlot(index: 0)
        #expect(first.base == 0xC000_1000 && first.gsi == 5)
        #expect(first.kernelParameter == "virtio_mmio.device=512@0xc0001000:5")
        let last = VirtioMmioSlot(index: 18)
        #expect(last.base == 0xC001_3000 && last.gsi == 23)  // the last IOAPIC pin
        #expect(last.base + 0x1000 <= X86MemoryLayout.ioapicAddress)
    }
}
