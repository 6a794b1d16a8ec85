/// Why a microVM stopped. Each reason has its own process exit code for `kata-vmm`, so
/// that scripts and the runtime can tell a clean poweroff from a reboot or a crash.
public enum VmExitReason: Equatable, Sendable, CustomStringConvertible {
    /// The guest powered off (ACPI S5 or KVM_SYSTEM_EVENT_SHUTDOWN).
    case poweroff
    /// The guest asked for a reset: i8042 pulse, ACPI reset register, KVM_SYSTEM_EVENT_RESET.
    case reset
    /// The guest triple-faulted (KVM_EXIT_SHUTDOWN).
    case tripleFault
    /// The guest reported a crash (KVM_SYSTEM_EVENT_CRASH, e.g. a pvpanic).
    case crash
    /// A vCPU could not continue: KVM internal error, failed entry or an unknown exit.
    case vcpuFailure(String)
    /// The VMM was told to stop by a signal.
    case signal(Int32)
    /// The VMM itself failed while running.
    case vmmError(String)

    /// Process exit codes, documented in README.md.
    public var exitCode: Int32 {
        switch self {
        case .poweroff: return 0
        case .vmmError: return 1
        case .reset: return 2
        case .tripleFault: return 3
        case .crash: return 4
        case .vcpuFailure: return 5
        case .signal(let number): return 128 + number
        }
    }

    public var description: String {
        switch self {
        case .poweroff: return "guest powered off"
        case .reset: return "guest requested a reset"
        case .tripleFault: return "guest triple-faulted (KVM_EXIT_SHUTDOWN)"
        case .crash: return "guest reported a crash"
        case .vcpuFailure(let why): return "vCPU failure: \(why)"
        case .signal(let number): return "stopped by signal \(number)"
        case .vmmError(let why): return "VMM error: \(why)"
        }
    }
}
