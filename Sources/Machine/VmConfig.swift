import VMM

/// Everything needed to build one microVM. A value type: the CLI flags (and, later, the
/// config file and the HTTP API) all produce one of these, and `validate()` is the single
/// place that judges it.
public struct VmConfig: Sendable, Equatable {
    /// Where the guest's serial console goes.
    public enum SerialOutput: Sendable, Equatable {
        case stdio
        case file(String)
        case none
    }

    public static let defaultCmdline = "console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd"
    public static let maxVcpus = 32
    public static let minMemoryMiB = 4
    public static let maxMemoryMiB = 1 << 20  // 1 TiB

    public var kernelPath: String
    public var initrdPath: String?
    public var cmdline: String
    public var vcpuCount: Int
    public var memoryMiB: Int
    public var serial: SerialOutput
    /// nil: the kernel's preferred entry (64-bit Linux boot protocol, else PVH).
    public var bootProtocol: BootProtocol?

    public init(kernelPath: String, initrdPath: String? = nil, cmdline: String = VmConfig.defaultCmdline,
                vcpuCount: Int = 1, memoryMiB: Int = 128, serial: SerialOutput = .stdio,
                bootProtocol: BootProtocol? = nil) {
        self.kernelPath = kernelPath
        self.initrdPath = initrdPath
        self.cmdline = cmdline
        self.vcpuCount = vcpuCount
        self.memoryMiB = memoryMiB
        self.serial = serial
        self.bootProtocol = bootProtocol
    }

    public enum ValidationError: Error, CustomStringConvertible, Equatable {
        case vcpuCount(Int, hostMax: Int)
        case memory(Int)

        public var description: String {
            switch self {
            case .vcpuCount(let n, let hostMax):
                return "invalid vCPU count \(n): must be between 1 and \(min(VmConfig.maxVcpus, hostMax))"
                    + (hostMax < VmConfig.maxVcpus ? " (KVM on this host allows \(hostMax))" : "")
            case .memory(let mib):
                return "invalid memory size \(mib) MiB: must be between \(VmConfig.minMemoryMiB) and \(VmConfig.maxMemoryMiB) MiB"
            }
        }
    }

    /// Checks the values that do not need the kernel image; `hostMaxVcpus` comes from KVM.
    public func validate(hostMaxVcpus: Int = VmConfig.maxVcpus) throws {
        guard vcpuCount >= 1, vcpuCount <= min(Self.maxVcpus, hostMaxVcpus) else {
            throw ValidationError.vcpuCount(vcpuCount, hostMax: hostMaxVcpus)
        }
        guard memoryMiB >= Self.minMemoryMiB, memoryMiB <= Self.maxMemoryMiB else {
            throw ValidationError.memory(memoryMiB)
        }
    }
}
