import VMM

/// The hardware-reduced ACPI sleep-control / sleep-status / reset register the FADT
/// points at (one byte at port 0x3c0). The guest's `poweroff` writes SLP_TYP(S5)|SLP_EN
/// here, its `reboot` writes the FADT's RESET_VALUE.
public final class AcpiPowerRegisters: BusDevice, Sendable {
    public static let port = UInt64(AcpiTables.powerRegisterPort)
    static let sleepEnable: UInt8 = 1 << 5

    public enum Event: Equatable, Sendable { case poweroff, reset }

    private let onEvent: @Sendable (Event) -> Void

    public init(onEvent: @escaping @Sendable (Event) -> Void) {
        self.onEvent = onEvent
    }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        for i in data.indices { data[i] = 0 }
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        guard offset == 0, data.count > 0 else { return }
        let value = data[0]
        if value == AcpiTables.resetValue {
            onEvent(.reset)
        } else if value & Self.sleepEnable != 0, (value >> 2) & 0x7 == AcpiTables.s5SleepType {
            onEvent(.poweroff)
        }
    }
}
