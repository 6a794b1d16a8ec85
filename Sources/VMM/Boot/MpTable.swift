/// The Intel MultiProcessor Specification 1.4 tables: how a kernel without ACPI finds
/// the vCPUs, the IOAPIC and the ISA interrupt wiring. Placed in the EBDA, where Linux
/// scans for the floating pointer.
public enum MpTable {
    public static let floatingPointerSize = 16
    public static let headerSize = 44
    public static let processorEntrySize = 20
    public static let smallEntrySize = 8
    public static let ioapicVersion: UInt8 = 0x11
    public static let lapicVersion: UInt8 = 0x14
    /// IOAPIC pins wired: KVM's in-kernel IOAPIC has 24.
    public static let ioapicPins = 24
    /// Size available in the EBDA for the whole structure.
    public static let maxSize = Int(0xA0000 - X86MemoryLayout.mpTableAddress)

    /// The IOAPIC's ID: the first one after the vCPUs' APIC IDs.
    public static func ioapicId(vcpuCount: Int) -> UInt8 { UInt8(vcpuCount) }

    public static func size(vcpuCount: Int) -> Int {
        floatingPointerSize + headerSize + vcpuCount * processorEntrySize
            + smallEntrySize * (1 + 1 + ioapicPins + 2)
    }

    /// The floating pointer followed by the configuration table, for `address`.
    public static func build(vcpuCount: Int, address: UInt64 = X86MemoryLayout.mpTableAddress) -> [UInt8] {
        let ioapicId = ioapicId(vcpuCount: vcpuCount)
        var table = ByteWriter(size: headerSize)
        table.ascii("PCMP", at: 0)
        table.u8(4, at: 6)  // spec revision 1.4
        table.ascii("KATASWFT", at: 8)  // OEM ID
        table.ascii("MICROVM     ", at: 16)  // product ID
        table.u32(UInt32(X86MemoryLayout.lapicAddress), at: 36)
        var entryCount: UInt16 = 0

        for cpu in 0..<vcpuCount {
            var entry = ByteWriter(size: processorEntrySize)
            entry.u8(0, at: 0)  // processor
            entry.u8(UInt8(cpu), at: 1)  // local APIC ID
            entry.u8(lapicVersion, at: 2)
            entry.u8(cpu == 0 ? 0x3 : 0x1, at: 3)  // enabled (+ bootstrap processor)
            entry.u32(0x600, at: 4)  // signature: family 6
            entry.u32(0x201, at: 8)  // feature flags: FPU, APIC
            table.append(entry.bytes)
            entryCount += 1
        }
        var bus = ByteWriter(size: smallEntrySize)
        bus.u8(1, at: 0)  // bus
        bus.u8(0, at: 1)  // bus ID
        bus.ascii("ISA   ", at: 2)
        table.append(bus.bytes)
        entryCount += 1

        var ioapic = ByteWriter(size: smallEntrySize)
        ioapic.u8(2, at: 0)
        ioapic.u8(ioapicId, at: 1)
        ioapic.u8(ioapicVersion, at: 2)
        ioapic.u8(1, at: 3)  // enabled
        ioapic.u32(UInt32(X86MemoryLayout.ioapicAddress), at: 4)
        table.append(ioapic.bytes)
        entryCount += 1

        for pin in 0..<ioapicPins {
            var interrupt = ByteWriter(size: smallEntrySize)
            interrupt.u8(3, at: 0)  // I/O interrupt assignment
            interrupt.u8(0, at: 1)  // INT (vectored)
            interrupt.u16(0, at: 2)  // conforms to bus: ISA is edge, active high
            interrupt.u8(0, at: 4)  // source bus: ISA
            interrupt.u8(UInt8(pin), at: 5)  // source IRQ
            interrupt.u8(ioapicId, at: 6)
            interrupt.u8(UInt8(pin), at: 7)  // IOAPIC pin: KVM routes GSI n to pin n
            table.append(interrupt.bytes)
            entryCount += 1
        }
        for (type, destination, lint) in [(UInt8(3), UInt8(0), UInt8(0)), (UInt8(1), UInt8(0xFF), UInt8(1))] {
            var local = ByteWriter(size: smallEntrySize)
            local.u8(4, at: 0)  // local interrupt assignment
            local.u8(type, at: 1)  // ExtINT on LINT0, NMI on LINT1
            local.u16(0, at: 2)
            local.u8(0, at: 4)
            local.u8(0, at: 5)
            local.u8(destination, at: 6)  // BSP's LINT0; all LAPICs' LINT1
            local.u8(lint, at: 7)
            table.append(local.bytes)
            entryCount += 1
        }
        table.u16(UInt16(table.bytes.count), at: 4)  // base table length
        table.u16(entryCount, at: 34)
        table.u8(checksumByte(table.bytes), at: 7)

        var pointer = ByteWriter(size: floatingPointerSize)
        pointer.ascii("_MP_", at: 0)
        pointer.u32(UInt32(address) + UInt32(floatingPointerSize), at: 4)
        pointer.u8(1, at: 8)  // length in 16-byte units
        pointer.u8(4, at: 9)  // spec revision 1.4
        pointer.u8(checksumByte(pointer.bytes), at: 10)
        return pointer.bytes + table.bytes
    }
}
