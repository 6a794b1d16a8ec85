import CKVM
import CLinux
import Glibc
import LinuxSupport

/// The `/dev/kvm` system handle: capabilities, supported CPUID and MSRs, and VM creation.
public final class Kvm: Sendable {
    public static let devicePath = "/dev/kvm"
    public static let expectedApiVersion: Int32 = 12

    public let fd: OwnedFileDescriptor
    public let vcpuMmapSize: Int

    /// Why `/dev/kvm` cannot be used, phrased for the person who has to fix it.
    public enum OpenError: Error, CustomStringConvertible, Equatable {
        case missing(String)
        case permissionDenied(String)
        case unusable(String, SystemError)
        case wrongApiVersion(Int32)
        case missingCapability(String)

        public var description: String {
            switch self {
            case .missing(let path):
                return "\(path) does not exist: KVM is not available on this host (load kvm_intel/kvm_amd, or enable nested virtualisation)"
            case .permissionDenied(let path):
                return "\(path) is not accessible: permission denied (add this user to the 'kvm' group or run as root)"
            case .unusable(let path, let error):
                return "\(path) cannot be opened: \(error)"
            case .wrongApiVersion(let version):
                return "KVM API version \(version) is not supported (need \(Kvm.expectedApiVersion))"
            case .missingCapability(let name):
                return "KVM lacks the required capability \(name)"
            }
        }
    }

    public init(path: String = Kvm.devicePath) throws {
        let raw = open(path, O_RDWR | O_CLOEXEC)
        if raw < 0 {
            let err = errno
            switch err {
            case ENOENT, ENODEV, ENXIO: throw OpenError.missing(path)
            case EACCES, EPERM: throw OpenError.permissionDenied(path)
            default: throw OpenError.unusable(path, SystemError("open", errno: err))
            }
        }
        fd = OwnedFileDescriptor(raw)
        let version = ckvm_get_api_version(raw)
        guard version == Kvm.expectedApiVersion else { throw OpenError.wrongApiVersion(version) }
        for (cap, name) in [
            (KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"), (KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"),
            (KVM_CAP_IRQFD, "KVM_CAP_IRQFD"), (KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"),
            (KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"), (KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"),
            (KVM_CAP_PIT2, "KVM_CAP_PIT2"),
        ] where ckvm_check_extension(raw, Int32(cap)) <= 0 {
            throw OpenError.missingCapability(name)
        }
        let size = ckvm_get_vcpu_mmap_size(raw)
        if size <= 0 { throw SystemError("KVM_GET_VCPU_MMAP_SIZE") }
        vcpuMmapSize = Int(size)
    }

    /// Value of `KVM_CHECK_EXTENSION` for a capability (0 when absent).
    public func checkExtension(_ capability: Int32) -> Int32 {
        max(0, ckvm_check_extension(fd.rawValue, capability))
    }

    /// The largest vCPU count this host's KVM accepts for one VM.
    public var maxVcpus: Int {
        let max = checkExtension(Int32(KVM_CAP_MAX_VCPUS))
        if max > 0 { return Int(max) }
        let recommended = checkExtension(Int32(KVM_CAP_NR_VCPUS))
        return recommended > 0 ? Int(recommended) : 4
    }

    public func createVm() throws -> Vm {
        let raw = try check("KVM_CREATE_VM", ckvm_create_vm(fd.rawValue, 0))
        return Vm(kvm: self, fd: OwnedFileDescriptor(raw))
    }

    /// `KVM_GET_SUPPORTED_CPUID`, growing the buffer until the kernel's table fits.
    public func supportedCpuid() throws -> [CpuidEntry] {
        var capacity = 128
        while true {
            let entries = try CpuidTable.withBuffer(capacity: capacity) { table -> [CpuidEntry]? in
                if ckvm_get_supported_cpuid(fd.rawValue, table) < 0 {
                    if errno == E2BIG { return nil }
                    throw SystemError("KVM_GET_SUPPORTED_CPUID")
                }
                return CpuidTable.entries(of: table)
            }
            if let entries { return entries }
            capacity *= 2
            if capacity > 4096 { throw SystemError("KVM_GET_SUPPORTED_CPUID", errno: E2BIG) }
        }
    }

    /// `KVM_GET_MSR_INDEX_LIST`: the MSRs this host lets a VMM save and restore.
    public func supportedMsrs() throws -> Set<UInt32> {
        var capacity = 256
        while true {
            let header = MemoryLayout<kvm_msr_list>.size
            let raw = UnsafeMutableRawPointer.allocate(byteCount: header + capacity * 4, alignment: 8)
            defer { raw.deallocate() }
            let list = raw.bindMemory(to: kvm_msr_list.self, capacity: 1)
            list.pointee.nmsrs = UInt32(capacity)
            if ckvm_get_msr_index_list(fd.rawValue, list) < 0 {
                if errno == E2BIG, list.pointee.nmsrs > UInt32(capacity) {
                    capacity = Int(list.pointee.nmsrs)
                    continue
                }
                throw SystemError("KVM_GET_MSR_INDEX_LIST")
            }
            let indices = (raw + header).bindMemory(to: UInt32.self, capacity: Int(list.pointee.nmsrs))
            return Set(UnsafeBufferPointer(start: indices, count: Int(list.pointee.nmsrs)))
        }
    }
}
