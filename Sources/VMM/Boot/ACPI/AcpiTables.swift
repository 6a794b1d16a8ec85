/// Builds the ACPI tables the guest finds through the RSDP: XSDT, a hardware-reduced FADT
/// (sleep/reset through `AcpiPowerRegisters`, so `poweroff` and `reboot` work with no
/// legacy PM hardware), a MADT for the vCPUs and IOAPIC, and a DSDT defining \_S5.
public struct AcpiTables {
    public static let oemId = "KATASW"
    public static let oemTableId = "KATAVMM "
    public static let creatorId = "KSWF"
    /// Port of the combined sleep-control / sleep-status / reset register.
    public static let powerRegisterPort: UInt16 = 0x3C0
    public static let resetValue: UInt8 = 0x01
    /// Sleep type the DSDT's \_S5 package assigns to soft-off.
    public static let s5SleepType: UInt8 = 5

    public let vcpuCount: Int
    public let ioapicId: UInt8
    /// virtio-mmio devices to describe (LNRO0005), for discovery through ACPI.
    public let virtioSlots: [VirtioMmioSlot]

    public init(vcpuCount: Int, virtioSlots: [VirtioMmioSlot] = []) {
        self.vcpuCount = vcpuCount
        self.ioapicId = MpTable.ioapicId(vcpuCount: vcpuCount)
        self.virtioSlots = virtioSlots
    }

    /// The standard 36-byte table header; length and checksum are filled by `finish`.
    static func header(signature: String, revision: UInt8) -> ByteWriter {
        var w = ByteWriter(size: 36)
        w.ascii(signature, at: 0)
        w.u8(revision, at: 8)
        w.ascii(oemId, at: 10)
        w.ascii(oemTableId, at: 16)
        w.u32(1, at: 24)  // OEM revision
        w.ascii(creatorId, at: 28)
        w.u32(1, at: 32)  // creator revision
        return w
    }

    static func finish(_ table: ByteWriter) -> [UInt8] {
        var table = table
        table.u32(UInt32(table.bytes.count), at: 4)
        table.u8(0, at: 9)
        table.u8(checksumByte(table.bytes), at: 9)
        return table.bytes
    }

    /// Generic Address Structure for a byte-wide system I/O port.
    static func ioPort(_ port: UInt16) -> [UInt8] {
        var w = ByteWriter(size: 12)
        w.u8(1, at: 0)  // system I/O space
        w.u8(8, at: 1)  // bit width
        w.u8(0, at: 2)  // bit offset
        w.u8(1, at: 3)  // byte access
        w.u64(UInt64(port), at: 4)
        return w.bytes
    }

    /// The DSDT: \_S5 for soft-off, and the legacy devices with their resources. On a
    /// hardware-reduced platform Linux maps no ISA IRQ by itself: the serial port and the
    /// PS/2 controller get their interrupts only because they are described here.
    public func dsdt() -> [UInt8] {
        var table = Self.header(signature: "DSDT", revision: 2)
        table.append(definitionBlock.flatMap(\.bytes))
        return Self.finish(table)
    }

    /// One virtio-mmio device as Linux's virtio_mmio driver matches it over ACPI.
    static func virtioDevice(_ index: Int, _ slot: VirtioMmioSlot) -> Aml.Term {
        let hex = String(index, radix: 16, uppercase: true)
        let name = "V" + String(repeating: "0", count: max(0, 3 - hex.count)) + hex
        return Aml.device(name, [
            Aml.name("_HID", Aml.string("LNRO0005")),
            Aml.name("_UID", Aml.integer(UInt64(index))),
            Aml.name("_CCA", Aml.integer(1)),  // cache-coherent DMA
            Aml.name("_CRS", Aml.resourceTemplate([
                .memory32Fixed(UInt32(slot.base), length: UInt32(VirtioMmioSlot.windowSize)),
                .interrupt(slot.gsi),
            ])),
        ])
    }

    var definitionBlock: [Aml.Term] {
        [
            Aml.name("_S5", Aml.package([Aml.integer(UInt64(Self.s5SleepType)), Aml.integer(0), Aml.integer(0), Aml.integer(0)])),
            Aml.scope("\\_SB", [
                Aml.device("COM1", [
                    Aml.name("_HID", Aml.eisaId("PNP0501")),
                    Aml.name("_UID", Aml.integer(1)),
                    Aml.name("_CRS", Aml.resourceTemplate([.io(0x3F8, length: 8), .irqNoFlags(4)])),
                ]),
                Aml.device("PS2K", [
                    Aml.name("_HID", Aml.eisaId("PNP0303")),
                    Aml.name("_CRS", Aml.resourceTemplate([.io(0x60, length: 1), .io(0x64, length: 1), .irqNoFlags(1)])),
                ]),
            ] + virtioSlots.enumerated().map { Self.virtioDevice($0, $1) }),
        ]
    }

    public func fadt(dsdtAddress: UInt64) -> [UInt8] {
        var table = Self.header(signature: "FACP", revision: 6)
        table.put([UInt8](repeating: 0, count: 276 - 36), at: 36)
        table.u32(UInt32(dsdtAddress), at: 40)
        // IAPC_BOOT_ARCH: no VGA, no CMOS RTC.
        table.u16((1 << 2) | (1 << 5), at: 109)
        // Flags: WBINVD, RESET_REG_SUP, HW_REDUCED_ACPI.
        table.u32((1 << 0) | (1 << 10) | (1 << 20), at: 112)
        table.put(Self.ioPort(Self.powerRegisterPort), at: 116)  // RESET_REG
        table.u8(Self.resetValue, at: 128)
        table.u8(0, at: 131)  // FADT minor version: ACPI 6.0
        table.u64(dsdtAddress, at: 140)  // X_DSDT
        table.put(Self.ioPort(Self.powerRegisterPort), at: 244)  // SLEEP_CONTROL_REG
        table.put(Self.ioPort(Self.powerRegisterPort), at: 256)  // SLEEP_STATUS_REG
        table.ascii("KATASWFT", at: 268)  // hypervisor vendor identity
        return Self.finish(table)
    }

    public func madt() -> [UInt8] {
        var table = Self.header(signature: "APIC", revision: 4)
        table.u32(UInt32(X86MemoryLayout.lapicAddress), at: 36)
        table.u32(1, at: 40)  // PCAT_COMPAT: the in-kernel 8259 pair is present
        for cpu in 0..<vcpuCount {
            table.append([0, 8, UInt8(cpu), UInt8(cpu), 1, 0, 0, 0])  // processor local APIC, enabled
        }
        var ioapic = ByteWriter(size: 12)
        ioapic.u8(1, at: 0)
        ioapic.u8(12, at: 1)
        ioapic.u8(ioapicId, at: 2)
        ioapic.u32(UInt32(X86MemoryLayout.ioapicAddress), at: 4)
        ioapic.u32(0, at: 8)  // GSI base
        table.append(ioapic.bytes)
        table.append([4, 6, 0xFF, 0, 0, 1])  // local APIC NMI: all processors, LINT1
        return Self.finish(table)
    }

    public static func xsdt(entries: [UInt64]) -> [UInt8] {
        var table = header(signature: "XSDT", revision: 1)
        for entry in entries {
            var w = ByteWriter(size: 8)
            w.u64(entry, at: 0)
            table.append(w.bytes)
        }
        return finish(table)
    }

    public static func rsdp(xsdtAddress: UInt64) -> [UInt8] {
        var w = ByteWriter(size: 36)
        w.ascii("RSD PTR ", at: 0)
        w.ascii(oemId, at: 9)
        w.u8(2, at: 15)  // ACPI 2.0+
        w.u32(36, at: 20)
        w.u64(xsdtAddress, at: 24)
        w.u8(checksumByte(w.bytes[0..<20]), at: 8)
        w.u8(checksumByte(w.bytes), at: 32)
        return w.bytes
    }

    /// Lays out RSDP, XSDT, FADT, MADT and DSDT from `base` (16-byte aligned each).
    /// Returns (address, bytes) pieces; the first is the RSDP.
    public func build(base: UInt64 = X86MemoryLayout.rsdpAddress) -> [(address: UInt64, bytes: [UInt8])] {
        func align(_ a: UInt64) -> UInt64 { (a + 15) & ~15 }
        let rsdpAddress = base
        let dsdtAddress = align(rsdpAddress + 36)
        let dsdt = dsdt()
        let fadtAddress = align(dsdtAddress + UInt64(dsdt.count))
        let fadt = fadt(dsdtAddress: dsdtAddress)
        let madtAddress = align(fadtAddress + UInt64(fadt.count))
        let madt = madt()
        let xsdtAddress = align(madtAddress + UInt64(madt.count))
        let xsdt = Self.xsdt(entries: [fadtAddress, madtAddress])
        return [(rsdpAddress, Self.rsdp(xsdtAddress: xsdtAddress)), (dsdtAddress, dsdt), (fadtAddress, fadt),
                (madtAddress, madt), (xsdtAddress, xsdt)]
    }
}
