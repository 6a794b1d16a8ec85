import Glibc
import Synchronization
import VMM
import LinuxSupport

/// A 16550A-compatible UART (COM1: ports 0x3f8-0x3ff, IRQ 4), the guest's console.
/// Transmit goes straight to the output fd; receive comes from the event loop (stdin)
/// through a 64-byte FIFO. Interrupts are edges on an irqfd, as on the ISA bus.
public final class Serial8250: BusDevice, @unchecked Sendable {  // registers behind `state` (Mutex); `onReceiveSpace` is set once, before the vCPUs start
    public static let com1Base: UInt64 = 0x3F8
    public static let com1Irq: UInt32 = 4
    public static let registerCount: UInt64 = 8
    public static let fifoCapacity = 64

    // Register offsets
    static let data = 0, ier = 1, iirFcr = 2, lcr = 3, mcr = 4, lsr = 5, msr = 6, scr = 7
    // IER bits
    static let ierReceiveData: UInt8 = 0x01
    static let ierTransmitEmpty: UInt8 = 0x02
    // IIR values
    static let iirNone: UInt8 = 0x01
    static let iirTransmitEmpty: UInt8 = 0x02
    static let iirReceiveData: UInt8 = 0x04
    static let iirFifoEnabled: UInt8 = 0xC0
    // LSR bits
    static let lsrDataReady: UInt8 = 0x01
    static let lsrTransmitterEmpty: UInt8 = 0x60  // THRE | TEMT
    // LCR / MCR bits
    static let lcrDivisorLatch: UInt8 = 0x80
    static let mcrLoopback: UInt8 = 0x10
    // MSR with no modem attached: carrier, data set ready, clear to send.
    static let msrIdle: UInt8 = 0xB0

    struct State {
        var ier: UInt8 = 0
        var lcr: UInt8 = 0x03  // 8N1
        var mcr: UInt8 = 0x08  // OUT2
        var scr: UInt8 = 0
        var divisorLow: UInt8 = 0x0C  // 9600 baud
        var divisorHigh: UInt8 = 0
        var fifoEnabled = false
        var transmitEmptyPending = false
        var rx: [UInt8] = []
        var rxHead = 0

        var rxCount: Int { rx.count - rxHead }

        var iir: UInt8 {
            var value = Serial8250.iirNone
            if ier & Serial8250.ierReceiveData != 0 && rxCount > 0 {
                value = Serial8250.iirReceiveData
            } else if ier & Serial8250.ierTransmitEmpty != 0 && transmitEmptyPending {
                value = Serial8250.iirTransmitEmpty
            }
            return value | (fifoEnabled ? Serial8250.iirFifoEnabled : 0)
        }

        mutating func popRx() -> UInt8? {
            guard rxHead < rx.count else { return nil }
            let byte = rx[rxHead]
            rxHead += 1
            if rxHead == rx.count {
                rx.removeAll(keepingCapacity: true)
                rxHead = 0
            }
            return byte
        }
    }

    private let state = Mutex(State())
    private let output: ConsoleLog?
    private let interrupt: EventFd
    /// Called (outside the lock) when the guest has emptied the receive FIFO.
    public var onReceiveSpace: (@Sendable () -> Void)?

    /// `output` nil discards transmitted bytes (`--serial none`).
    public init(output: ConsoleLog?, interrupt: EventFd) {
        self.output = output
        self.interrupt = interrupt
    }

    /// Output to a descriptor, uncapped (stdout, a pipe).
    public convenience init(output: OwnedFileDescriptor?, interrupt: EventFd) {
        self.init(output: output.map { ConsoleLog(descriptor: $0) }, interrupt: interrupt)
    }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        guard data.count > 0 else { return }
        var drained = false
        let value: UInt8 = state.withLock { s in
            switch Int(offset) {
            case Self.data:
                if s.lcr & Self.lcrDivisorLatch != 0 { return s.divisorLow }
                let byte = s.popRx() ?? 0
                drained = s.rxCount == 0
                return byte
            case Self.ier:
                return s.lcr & Self.lcrDivisorLatch != 0 ? s.divisorHigh : s.ier
            case Self.iirFcr:
                let iir = s.iir
                // Reading IIR while it reports THRE acknowledges that interrupt.
                if iir & 0x0F == Self.iirTransmitEmpty { s.transmitEmptyPending = false }
                return iir
            case Self.lcr: return s.lcr
            case Self.mcr: return s.mcr
            case Self.lsr: return Self.lsrTransmitterEmpty | (s.rxCount > 0 ? Self.lsrDataReady : 0)
            case Self.msr:
                guard s.mcr & Self.mcrLoopback != 0 else { return Self.msrIdle }
                // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
                let m = s.mcr
                return ((m & 0x1) << 5) | ((m & 0x2) << 3) | ((m & 0x4) << 4) | ((m & 0x8) << 4)
            case Self.scr: return s.scr
            default: return 0xFF
            }
        }
        data[0] = value
        for i in 1..<data.count { data[i] = 0 }
        if drained { onReceiveSpace?() }
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        guard data.count > 0 else { return }
        let value = data[0]
        var transmit: UInt8?
        let raise: Bool = state.withLock { s in
            switch Int(offset) {
            case Self.data:
                if s.lcr & Self.lcrDivisorLatch != 0 {
                    s.divisorLow = value
                    return false
                }
                if s.mcr & Self.mcrLoopback != 0 {
                    if s.rxCount < Self.fifoCapacity { s.rx.append(value) }
                } else {
                    transmit = value
                }
                s.transmitEmptyPending = true
                return s.ier & Self.ierTransmitEmpty != 0
                    || (s.mcr & Self.mcrLoopback != 0 && s.ier & Self.ierReceiveData != 0)
            case Self.ier:
                if s.lcr & Self.lcrDivisorLatch != 0 {
                    s.divisorHigh = value
                    return false
                }
                let enabling = value & ~s.ier
                s.ier = value & 0x0F
                if enabling & Self.ierTransmitEmpty != 0 { s.transmitEmptyPending = true }
                return (enabling & Self.ierTransmitEmpty != 0)
                    || (enabling & Self.ierReceiveData != 0 && s.rxCount > 0)
            case Self.iirFcr:
                s.fifoEnabled = value & 0x01 != 0
                if value & 0x02 != 0 { s.rx.removeAll(keepingCapacity: true); s.rxHead = 0 }
                return false
            case Self.lcr:
                s.lcr = value
                return false
            case Self.mcr:
                s.mcr = value & 0x1F
                return false
            case Self.scr:
                s.scr = value
                return false
            default:
                return false
            }
        }
        if let transmit, let output { output.write(transmit) }
        if raise { interrupt.signal() }
    }

    /// Free space in the receive FIFO: how much the event loop may read from its input.
    public var receiveSpace: Int {
        state.withLock { Self.fifoCapacity - $0.rxCount }
    }

    /// Queues input bytes for the guest; returns how many fitted in the FIFO.
    @discardableResult
    public func enqueueInput(_ bytes: UnsafeRawBufferPointer) -> Int {
        let (accepted, raise) = state.withLock { s -> (Int, Bool) in
            let n = min(bytes.count, Self.fifoCapacity - s.rxCount)
            s.rx.append(contentsOf: bytes.prefix(n))
            return (n, n > 0 && s.ier & Self.ierReceiveData != 0)
        }
        if raise { interrupt.signal() }
        return accepted
    }
}
