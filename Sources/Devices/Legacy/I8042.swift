import Synchronization
import VMM

/// The PS/2 controller, as much of it as a microVM needs: the guest's reboot path
/// (command 0xFE on port 0x64, or clearing the reset line through the output port) and
/// a keyboard that can send Ctrl-Alt-Del. Ports 0x60 (data) and 0x64 (status/command),
/// keyboard interrupt on IRQ 1.
public final class I8042: BusDevice, Sendable {
    public static let dataPort: UInt64 = 0x60
    public static let commandPort: UInt64 = 0x64
    public static let keyboardIrq: UInt32 = 1
    /// Registered as one range 0x60-0x64; port 0x61 (PC speaker) is KVM's in-kernel PIT's.
    public static let portSpan: UInt64 = 5

    // Status register bits
    static let statusOutputFull: UInt8 = 0x01
    static let statusSystemFlag: UInt8 = 0x04
    static let statusCommand: UInt8 = 0x08
    static let statusUnlocked: UInt8 = 0x10
    // Controller configuration byte bits
    static let configKeyboardInterrupt: UInt8 = 0x01
    static let configSystemFlag: UInt8 = 0x04

    // Controller commands
    static let cmdReadConfig: UInt8 = 0x20
    static let cmdWriteConfig: UInt8 = 0x60
    static let cmdDisableAux: UInt8 = 0xA7
    static let cmdEnableAux: UInt8 = 0xA8
    static let cmdTestAux: UInt8 = 0xA9
    static let cmdSelfTest: UInt8 = 0xAA
    static let cmdTestKeyboard: UInt8 = 0xAB
    static let cmdDisableKeyboard: UInt8 = 0xAD
    static let cmdEnableKeyboard: UInt8 = 0xAE
    static let cmdReadInputPort: UInt8 = 0xC0
    static let cmdReadOutputPort: UInt8 = 0xD0
    static let cmdWriteOutputPort: UInt8 = 0xD1
    static let cmdWriteKeyboardBuffer: UInt8 = 0xD2
    static let cmdPulseReset: UInt8 = 0xFE

    /// Set-2 scancodes for pressing Ctrl, Alt and Delete (what Firecracker sends).
    public static let ctrlAltDelScancodes: [UInt8] = [0x14, 0x11, 0xE0, 0x71]
    static let bufferCapacity = 16

    struct State {
        var status: UInt8 = I8042.statusUnlocked
        var config: UInt8 = I8042.configKeyboardInterrupt | I8042.configSystemFlag
        var outputPort: UInt8 = 0x01
        var pendingCommand: UInt8?
        var buffer: [UInt8] = []
    }

    private let state = Mutex(State())
    private let interrupt: EventFd
    private let onReset: @Sendable () -> Void

    public init(interrupt: EventFd, onReset: @escaping @Sendable () -> Void) {
        self.interrupt = interrupt
        self.onReset = onReset
    }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        guard data.count > 0 else { return }
        var raise = false
        let value: UInt8 = state.withLock { s in
            switch offset {
            case Self.commandPort - Self.dataPort:
                return s.status | (s.buffer.isEmpty ? 0 : Self.statusOutputFull)
            case 0:
                guard !s.buffer.isEmpty else { return 0 }
                let byte = s.buffer.removeFirst()
                raise = !s.buffer.isEmpty && s.config & Self.configKeyboardInterrupt != 0
                return byte
            default:
                return 0xFF
            }
        }
        data[0] = value
        for i in 1..<data.count { data[i] = 0 }
        if raise { interrupt.signal() }
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        guard data.count > 0 else { return }
        let value = data[0]
        var reset = false
        let raise: Bool = state.withLock { s in
            if offset == Self.commandPort - Self.dataPort {
                s.status |= Self.statusCommand
                return command(value, &s, &reset)
            }
            s.status &= ~Self.statusCommand
            guard offset == 0 else { return false }
            if let pending = s.pendingCommand {
                s.pendingCommand = nil
                switch pending {
                case Self.cmdWriteConfig:
                    s.config = value
                    if value & Self.configSystemFlag != 0 { s.status |= Self.statusSystemFlag }
                    return false
                case Self.cmdWriteOutputPort:
                    s.outputPort = value
                    if value & 0x01 == 0 { reset = true }  // bit 0 low holds the CPU in reset
                    return false
                case Self.cmdWriteKeyboardBuffer:
                    return push([value], &s)
                default:
                    return false
                }
            }
            // A byte for the keyboard itself: acknowledge, and answer the few queries Linux makes.
            switch value {
            case 0xFF: return push([0xFA, 0xAA], &s)  // reset -> ACK, self-test passed
            case 0xF2: return push([0xFA, 0xAB, 0x83], &s)  // identify -> MF2 keyboard
            case 0xEE: return push([0xEE], &s)  // echo
            default: return push([0xFA], &s)
            }
        }
        if raise { interrupt.signal() }
        if reset { onReset() }
    }

    private func command(_ value: UInt8, _ s: inout State, _ reset: inout Bool) -> Bool {
        switch value {
        case Self.cmdReadConfig: return push([s.config], &s)
        case Self.cmdWriteConfig, Self.cmdWriteOutputPort, Self.cmdWriteKeyboardBuffer:
            s.pendingCommand = value
        case Self.cmdSelfTest:
            s.status |= Self.statusSystemFlag
            return push([0x55], &s)
        case Self.cmdTestKeyboard, Self.cmdTestAux: return push([0x00], &s)
        case Self.cmdReadInputPort: return push([0x00], &s)
        case Self.cmdReadOutputPort: return push([s.outputPort], &s)
        case Self.cmdPulseReset: reset = true
        default: break  // enable/disable keyboard and aux: nothing to do
        }
        return false
    }

    private func push(_ bytes: [UInt8], _ s: inout State) -> Bool {
        let room = Self.bufferCapacity - s.buffer.count
        s.buffer.append(contentsOf: bytes.prefix(room))
        return room > 0 && s.config & Self.configKeyboardInterrupt != 0
    }

    /// Presses Ctrl-Alt-Del on the virtual keyboard (the guest decides what to do).
    public func sendCtrlAltDel() {
        let raise = state.withLock { s in push(Self.ctrlAltDelScancodes, &s) }
        if raise { interrupt.signal() }
    }
}
