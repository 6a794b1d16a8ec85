import CKVM
import CLinux
import Glibc
import Logging
import LinuxSupport

/// The exit loop of one vCPU, on its own thread: enters the guest with KVM_RUN and
/// handles each exit (port I/O and MMIO on the buses, system events, faults) until the
/// lifecycle says stop.
public final class VcpuRunner: @unchecked Sendable {  // `onFirstRun` is set before start(), `thread` only by the owner's start()/join(); the rest is `let`
    public let vcpu: Vcpu
    let pio: Bus
    let mmio: Bus
    let lifecycle: VmLifecycle
    let logger: Logger
    private var thread: PosixThread?
    /// Exit counters (written by this vCPU's thread only, read by the metrics writer).
    public let exits = VcpuExitCounters()
    /// Called on the first entry of vCPU 0, just before KVM_RUN (InstanceStart timing).
    public var onFirstRun: (@Sendable () -> Void)?

    public init(vcpu: Vcpu, pio: Bus, mmio: Bus, lifecycle: VmLifecycle, logger: Logger) {
        self.vcpu = vcpu
        self.pio = pio
        self.mmio = mmio
        self.lifecycle = lifecycle
        self.logger = logger
    }

    public func start() throws {
        do {
            thread = try PosixThread.start { [self] in
                lifecycle.attach(vcpu, thread: pthread_self())
                threadMain()
            }
        } catch {
            throw SystemError("pthread_create (vCPU \(vcpu.id))", errno: error.errno)
        }
    }

    public func join() {
        thread?.join()
        thread = nil
    }

    func threadMain() {
        // The kick must interrupt KVM_RUN even if whoever started us blocked real-time signals.
        var kick = sigset_t()
        sigemptyset(&kick)
        sigaddset(&kick, VmLifecycle.kickSignal)
        pthread_sigmask(SIG_UNBLOCK, &kick, nil)
        defer { lifecycle.vcpuFinished() }
        onFirstRun?()
        do {
            while !lifecycle.isStopping {
                guard try vcpu.runOnce() else {
                    exits.count(.interrupted)
                    lifecycle.interrupted(vcpu)
                    continue
                }
                if let reason = handleExit() {
                    if reason != .poweroff && reason != .reset { exits.count(.failure) }
                    lifecycle.stop(reason)
                }
            }
        } catch {
            exits.count(.failure)
            lifecycle.stop(.vcpuFailure("\(error)"))
        }
    }

    /// Handles the exit in `kvm_run`; returns a reason when the VM must stop.
    @inline(__always)
    func handleExit() -> VmExitReason? {
        let run = vcpu.run
        switch Int32(ckvm_run_exit_reason(run)) {
        case KVM_EXIT_IO:
            let io = ckvm_run_io(run).pointee
            let size = Int(io.size)
            let base = UnsafeMutableRawPointer(run) + Int(io.data_offset)
            let port = UInt64(io.port)
            exits.count(io.direction == UInt8(KVM_EXIT_IO_OUT) ? .ioOut : .ioIn)
            for i in 0..<Int(io.count) {
                let data = UnsafeMutableRawBufferPointer(start: base + i * size, count: size)
                if io.direction == UInt8(KVM_EXIT_IO_OUT) {
                    pio.write(port, UnsafeRawBufferPointer(data))
                } else {
                    pio.read(port, data)
                }
            }
            return nil
        case KVM_EXIT_MMIO:
            let mmioExit = ckvm_run_mmio(run)
            let length = min(Int(mmioExit.pointee.len), 8)
            exits.count(mmioExit.pointee.is_write != 0 ? .mmioWrite : .mmioRead)
            return withUnsafeMutableBytes(of: &mmioExit.pointee.data) { raw -> VmExitReason? in
                let data = UnsafeMutableRawBufferPointer(rebasing: raw[0..<length])
                if mmioExit.pointee.is_write != 0 {
                    mmio.write(mmioExit.pointee.phys_addr, UnsafeRawBufferPointer(data))
                } else {
                    mmio.read(mmioExit.pointee.phys_addr, data)
                }
                return nil
            }
        case KVM_EXIT_INTR:
            exits.count(.interrupted)
            return nil
        case KVM_EXIT_HLT:
            return .vcpuFailure("vCPU \(vcpu.id) halted (HLT exit with no interrupt source)")
        case KVM_EXIT_SHUTDOWN:
            logger.error("vCPU \(vcpu.id): triple fault (KVM_EXIT_SHUTDOWN)\n\(registerDump())")
            return .tripleFault
        case KVM_EXIT_SYSTEM_EVENT:
            exits.count(.systemEvent)
            let event = ckvm_run_system_event(run).pointee
            switch Int32(event.type) {
            case KVM_SYSTEM_EVENT_SHUTDOWN: return .poweroff
            case KVM_SYSTEM_EVENT_RESET: return .reset
            case KVM_SYSTEM_EVENT_CRASH:
                logger.error("vCPU \(vcpu.id): guest crash event\n\(registerDump())")
                return .crash
            default:
                return .vcpuFailure("vCPU \(vcpu.id): unhandled system event \(event.type)")
            }
        case KVM_EXIT_INTERNAL_ERROR:
            let internalError = ckvm_run_internal(run).pointee
            let why = Self.internalErrorName(internalError.suberror)
            logger.error("vCPU \(vcpu.id): KVM internal error \(internalError.suberror) (\(why))\n\(registerDump())")
            return .vcpuFailure("vCPU \(vcpu.id): KVM internal error \(internalError.suberror) (\(why))")
        case KVM_EXIT_FAIL_ENTRY:
            let failure = ckvm_run_fail_entry(run).pointee
            let reason = "0x" + String(failure.hardware_entry_failure_reason, radix: 16)
            logger.error("vCPU \(vcpu.id): VM entry failed, hardware reason \(reason)\n\(registerDump())")
            return .vcpuFailure("vCPU \(vcpu.id): VM entry failed (hardware reason \(reason))")
        case let other:
            return .vcpuFailure("vCPU \(vcpu.id): unexpected KVM exit \(other)")
        }
    }

    static func internalErrorName(_ suberror: UInt32) -> String {
        switch Int32(suberror) {
        case KVM_INTERNAL_ERROR_EMULATION: return "instruction emulation failed"
        case KVM_INTERNAL_ERROR_SIMUL_EX: return "exception while delivering an exception"
        case KVM_INTERNAL_ERROR_DELIVERY_EV: return "event delivery failed"
        default: return "suberror \(suberror)"
        }
    }

    /// The registers that explain a fault, for the log.
    public func registerDump() -> String {
        func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
        guard let r = try? vcpu.getRegs(), let s = try? vcpu.getSregs() else { return "  (registers unavailable)" }
        return """
              RIP=\(hex(r.rip)) RSP=\(hex(r.rsp)) RFLAGS=\(hex(r.rflags))
              RAX=\(hex(r.rax)) RBX=\(hex(r.rbx)) RCX=\(hex(r.rcx)) RDX=\(hex(r.rdx))
              RSI=\(hex(r.rsi)) RDI=\(hex(r.rdi)) RBP=\(hex(r.rbp))
              CR0=\(hex(s.cr0)) CR2=\(hex(s.cr2)) CR3=\(hex(s.cr3)) CR4=\(hex(s.cr4)) EFER=\(hex(s.efer))
              CS=\(hex(UInt64(s.cs.selector))) base=\(hex(s.cs.base)) L=\(s.cs.l) DB=\(s.cs.db) \
            GDT=\(hex(s.gdt.base))/\(s.gdt.limit) IDT=\(hex(s.idt.base))/\(s.idt.limit)
            """
    }
}
