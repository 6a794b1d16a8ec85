import Foundation
import OCI

/// How big a sandbox VM is, as the Kata user guide says: the configured base plus what the
/// container asks for. Memory = default_memory + the memory limit (rounded up to MiB);
/// vCPUs = default_vcpus + quota/period rounded up, at most default_maxvcpus (0: the
/// host's CPU count).
public struct SandboxSizing: Sendable, Equatable {
    public var vcpus: Int
    public var memoryMiB: Int

    public init(vcpus: Int, memoryMiB: Int) {
        self.vcpus = vcpus
        self.memoryMiB = memoryMiB
    }

    public init(config: RuntimeConfiguration.Hypervisor, resources: Spec.Resources?, hostCpus: Int = SandboxSizing.hostCpuCount) {
        var memory = config.defaultMemory
        // Rounded up without overflow, and capped before the addition: a bundle may ask for anything.
        if let limit = resources?.memory?.limit, limit > 0 {
            let mib = (limit >> 20) + (limit & ((1 << 20) - 1) != 0 ? 1 : 0)
            memory += Int(min(mib, Int64(VmLimits.maxMemoryMiB)))
        }
        var vcpus = config.defaultVcpus
        if let cpu = resources?.cpu, let quota = cpu.quota, quota > 0, let period = cpu.period, period > 0 {
            let extra = UInt64(quota) / period + (UInt64(quota) % period == 0 ? 0 : 1)
            vcpus += Int(min(extra, UInt64(VmLimits.maxVcpus)))
        }
        let maximum = min(config.defaultMaxVcpus == 0 ? hostCpus : config.defaultMaxVcpus, VmLimits.maxVcpus)
        self.vcpus = max(1, min(vcpus, maximum))
        self.memoryMiB = min(memory, VmLimits.maxMemoryMiB)
    }

    public static var hostCpuCount: Int { ProcessInfo.processInfo.activeProcessorCount }
}
