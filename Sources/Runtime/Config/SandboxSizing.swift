import Foundation
import OCI

/// How big a sandbox VM is, as the Kata user guide says: the configured base plus what the
/// container (or, through containerd's CRI, the whole pod) asks for. Memory = default_memory + the memory limit (rounded up to MiB);
/// vCPUs = default_vcpus + quota/period rounded up, at most default_maxvcpus (0: the
/// host's CPU count).
public struct SandboxSizing: Sendable, Equatable {
    public var vcpus: Int
    public var memoryMiB: Int

    public init(vcpus: Int, memoryMiB: Int) {
        self.vcpus = vcpus
        self.memoryMiB = memoryMiB
    }

    /// containerd's CRI puts the whole pod's limits on its sandbox's spec (Kubernetes 1.23
    /// and containerd 1.6 on), which is what sizes a pod's VM, as Kata's
    /// static_sandbox_resource_mgmt does. Quota and period are microseconds, memory bytes.
    public enum PodAnnotation {
        public static let memory = "io.kubernetes.cri.sandbox-memory"
        public static let cpuQuota = "io.kubernetes.cri.sandbox-cpu-quota"
        public static let cpuPeriod = "io.kubernetes.cri.sandbox-cpu-period"
    }

    /// The pod's annotations, where there are any, size the VM in place of the container's
    /// own resources; a value that is not a number is an error naming the annotation.
    public init(config: RuntimeConfiguration.Hypervisor, resources: Spec.Resources?, annotations: [String: String]? = nil,
                hostCpus: Int = SandboxSizing.hostCpuCount) throws {
        func number(_ key: String) throws -> Int64? {
            guard let text = annotations?[key] else { return nil }
            guard let value = Int64(text.trimmingCharacters(in: .whitespaces)) else {
                throw RuntimeError("annotation \(key): '\(text)' is not a number")
            }
            return value
        }
        let podMemory = try number(PodAnnotation.memory)
        let podQuota = try number(PodAnnotation.cpuQuota), podPeriod = try number(PodAnnotation.cpuPeriod)
        let memoryLimit = podMemory ?? resources?.memory?.limit
        let cpu = podQuota != nil || podPeriod != nil ? (podQuota, podPeriod.map { UInt64(max($0, 0)) }) : (resources?.cpu?.quota, resources?.cpu?.period)

        var memory = config.defaultMemory
        // Rounded up without overflow, and capped before the addition: a bundle may ask for anything.
        if let limit = memoryLimit, limit > 0 {
            let mib = (limit >> 20) + (limit & ((1 << 20) - 1) != 0 ? 1 : 0)
            memory += Int(min(mib, Int64(VmLimits.maxMemoryMiB)))
        }
        var vcpus = config.defaultVcpus
        if let quota = cpu.0, quota > 0, let period = cpu.1, period > 0 {
            let extra = UInt64(quota) / period + (UInt64(quota) % period == 0 ? 0 : 1)
            vcpus += Int(min(extra, UInt64(VmLimits.maxVcpus)))
        }
        let maximum = min(config.defaultMaxVcpus == 0 ? hostCpus : config.defaultMaxVcpus, VmLimits.maxVcpus)
        self.vcpus = max(1, min(vcpus, maximum))
        self.memoryMiB = min(memory, VmLimits.maxMemoryMiB)
    }

    public static var hostCpuCount: Int { ProcessInfo.processInfo.activeProcessorCount }
}
