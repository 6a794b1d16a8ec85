import Logging
import Testing
@testable import Devices
@testable import VMM

@Suite struct I8042Tests {
    final class Harness {
        let irq: EventFd
        let resets = Recorder<Bool>()
        var device: I8042!
        init() throws {
            irq = try EventFd()
            device = I8042(interrupt: irq) { [resets] in resets.record(true) }
        }
        func out(_ port: UInt64, _ value: UInt8) { [value].withUnsafeBytes { device.write(offset: port - 0x60, data: $0) } }
        func inb(_ port: UInt64) -> UInt8 {
            var value: UInt8 = 0
            withUnsafeMutableBytes(of: &value) { device.read(offset: port - 0x60, data: $0) }
            return value
        }
        var resetCount: Int { resets.count }
    }

    @Test func pulseResetCommandResetsTheGuest() throws {
        let h = try Harness()
        h.out(0x64, 0xFE)
        #expect(h.resetCount == 1)
    }

    @Test func outputPortResetLine() throws {
        let h = try Harness()
        h.out(0x64, 0xD1)
        h.out(0x60, 0xFF)  // bit 0 set: no reset
        #expect(h.resetCount == 0)
        h.out(0x64, 0xD1)
        h.out(0x60, 0xFE)
        #expect(h.resetCount == 1)
    }

    @Test func selfTestAndConfigurationByte() throws {
        let h = try Harness()
        h.out(0x64, 0xAA)
        #expect(h.inb(0x64) & 0x01 == 1)
        #expect(h.inb(0x60) == 0x55)
        #expect(h.inb(0x64) & 0x01 == 0)
        h.out(0x64, 0x60)
        h.out(0x60, 0x45)
        h.out(0x64, 0x20)
        #expect(h.inb(0x60) == 0x45)
        h.out(0x60, 0xFF)  // keyboard reset
        #expect([h.inb(0x60), h.inb(0x60)] == [0xFA, 0xAA])
        #expect(h.resetCount == 0)
    }

    @Test func ctrlAltDelQueuesScancodesAndInterrupts() throws {
        let h = try Harness()
        _ = h.irq.consume()
        h.device.sendCtrlAltDel()
        #expect(h.irq.consume() == 1)
        var codes: [UInt8] = []
        while h.inb(0x64) & 0x01 == 1 { codes.append(h.inb(0x60)) }
        #expect(codes == I8042.ctrlAltDelScancodes)
        #expect(h.irq.consume() == 3)  // one more edge per byte still queued after each read
    }

    @Test func bufferIsBounded() throws {
        let h = try Harness()
        for _ in 0..<100 { h.device.sendCtrlAltDel() }
        var count = 0
        while h.inb(0x64) & 0x01 == 1 { _ = h.inb(0x60); count += 1 }
        #expect(count == I8042.bufferCapacity)
    }
}

@Suite struct BootTimerTests {
    @Test func onlyTheMagicByteAtOffsetZeroCounts() {
        let seen = Recorder<BootTimer.Measurement>()
        ProcessClock.markProcessStart()
        let timer = BootTimer(logger: Logger(label: "test")) { m in seen.record(m) }
        [UInt8(122)].withUnsafeBytes { timer.write(offset: 0, data: $0) }
        [UInt8(123)].withUnsafeBytes { timer.write(offset: 4, data: $0) }
        #expect(seen.count == 0)
        [UInt8(123)].withUnsafeBytes { timer.write(offset: 0, data: $0) }
        #expect(seen.count == 1)
        var value: UInt32 = 0xFFFF_FFFF
        withUnsafeMutableBytes(of: &value) { timer.read(offset: 0, data: $0) }
        #expect(value == 0)
    }
}

@Suite struct AcpiPowerRegistersTests {
    @Test func sleepAndResetValues() {
        let events = Recorder<AcpiPowerRegisters.Event>()
        let device = AcpiPowerRegisters { e in events.record(e) }
        for value: UInt8 in [0x00, 0x14, 0x20 | (3 << 2), 0x20 | (5 << 2), 0x01] {
            [value].withUnsafeBytes { device.write(offset: 0, data: $0) }
        }
        #expect(events.all == [.poweroff, .reset])
    }
}
