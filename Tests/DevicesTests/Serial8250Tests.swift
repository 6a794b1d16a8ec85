import Glibc
import Testing
@testable import Devices
@testable import VMM
import LinuxSupport

/// Drives the UART as Linux's 8250 driver does, with a real pipe as the console output
/// and a real eventfd as the interrupt line.
@Suite struct Serial8250Tests {
    final class Harness {
        let serial: Serial8250
        let irq: EventFd
        let readEnd: Int32

        init(output: Bool = true) throws {
            var fds: [Int32] = [0, 0]
            #expect(pipe(&fds) == 0)
            _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
            readEnd = fds[0]
            irq = try EventFd()
            serial = Serial8250(output: output ? OwnedFileDescriptor(fds[1]) : nil, interrupt: irq)
            if !output { close(fds[1]) }
        }
        deinit { close(readEnd) }

        func out(_ register: UInt64, _ value: UInt8) {
            [value].withUnsafeBytes { serial.write(offset: register, data: $0) }
        }
        func inb(_ register: UInt64) -> UInt8 {
            var value: UInt8 = 0
            withUnsafeMutableBytes(of: &value) { serial.read(offset: register, data: $0) }
            return value
        }
        /// Interrupt edges since the last call.
        func interrupts() -> UInt64 { irq.consume() ?? 0 }
        func output() -> String {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = read(readEnd, &buffer, buffer.count)
            return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
        }
    }

    @Test func transmitsToTheOutputAndReportsAnEmptyTransmitter() throws {
        let h = try Harness()
        for byte in "hi\n".utf8 { h.out(0, byte) }
        #expect(h.output() == "hi\n")
        #expect(h.inb(5) == 0x60)  // THRE | TEMT, no data
        #expect(h.interrupts() == 0)  // IER is 0: no interrupts
    }

    @Test func transmitEmptyInterruptsAsLinuxUsesThem() throws {
        let h = try Harness()
        h.out(1, 0x02)  // IER = THRI: the transmitter is empty, so it interrupts at once
        #expect(h.interrupts() == 1)
        #expect(h.inb(2) & 0x0F == 0x02)  // IIR: THRE
        #expect(h.inb(2) & 0x0F == 0x01)  // reading IIR acknowledged it
        h.out(0, UInt8(ascii: "x"))  // each byte written re-arms THRE
        #expect(h.interrupts() == 1)
        #expect(h.inb(2) & 0x0F == 0x02)
        h.out(1, 0x00)
        h.out(0, UInt8(ascii: "y"))
        #expect(h.interrupts() == 0)
        #expect(h.output() == "xy")
    }

    @Test func receivesInputThroughTheFifo() throws {
        let h = try Harness()
        h.out(1, 0x01)  // IER = receive data
        #expect(h.interrupts() == 0)
        let accepted = Array("abc".utf8).withUnsafeBytes { h.serial.enqueueInput($0) }
        #expect(accepted == 3)
        #expect(h.interrupts() == 1)
        #expect(h.inb(5) & 0x01 == 1)
        #expect(h.inb(2) & 0x0F == 0x04)  // IIR: received data
        #expect([h.inb(0), h.inb(0), h.inb(0)] == Array("abc".utf8))
        #expect(h.inb(5) & 0x01 == 0)
        #expect(h.inb(2) & 0x0F == 0x01)
    }

    @Test func fifoNeverOverflowsAndSignalsSpace() throws {
        let h = try Harness()
        let drained = Recorder<Bool>()
        h.serial.onReceiveSpace = { drained.record(true) }
        let big = [UInt8](repeating: 0x41, count: 100)
        #expect(big.withUnsafeBytes { h.serial.enqueueInput($0) } == Serial8250.fifoCapacity)
        #expect(h.serial.receiveSpace == 0)
        #expect(big.withUnsafeBytes { h.serial.enqueueInput($0) } == 0)
        for _ in 0..<Serial8250.fifoCapacity { _ = h.inb(0) }
        #expect(h.serial.receiveSpace == Serial8250.fifoCapacity)
        #expect(drained.count == 1)
        #expect(h.inb(0) == 0)  // reading an empty FIFO returns 0, never traps
    }

    @Test func loopbackAndModemStatusAsAutoconfigProbesThem() throws {
        let h = try Harness()
        #expect(h.inb(6) == 0xB0)
        h.out(4, 0x10 | 0x0A)  // MCR: loop | RTS | OUT2
        #expect(h.inb(6) & 0xF0 == 0x90)  // CTS | DCD: what Linux's 8250 autoconfig expects
        h.out(0, 0x5A)  // looped back, not transmitted
        #expect(h.inb(0) == 0x5A)
        #expect(h.output() == "")
        h.out(4, 0x08)
    }

    @Test func divisorLatchScratchAndFifoControl() throws {
        let h = try Harness()
        h.out(3, 0x80)  // DLAB
        h.out(0, 0x01)
        h.out(1, 0x00)
        #expect(h.inb(0) == 0x01 && h.inb(1) == 0x00)
        h.out(3, 0x03)
        #expect(h.inb(3) == 0x03)
        h.out(7, 0xA5)
        #expect(h.inb(7) == 0xA5)
        h.out(2, 0x07)  // enable and clear FIFOs
        #expect(h.inb(2) & 0xC0 == 0xC0)  // 16550A FIFO bits
        #expect(h.output() == "")  // divisor writes never reach the console
    }

    @Test func noOutputMeansDiscard() throws {
        let h = try Harness(output: false)
        h.out(0, 0x41)
        #expect(h.inb(5) == 0x60)
    }
}
