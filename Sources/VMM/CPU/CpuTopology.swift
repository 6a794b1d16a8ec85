/// How the VMM presents N vCPUs to the guest: one socket, one thread per core or, with
/// SMT (Firecracker's `smt`), two threads per core; APIC ID = vCPU index, so with SMT its
/// bit 0 is the thread. Derives every CPUID leaf that encodes topology so that the guest's
/// view (leaf 1, 4, 0xB, 0x1F, 0x80000008, 0x8000001E) agrees with the MP table and the MADT.
public struct CpuTopology: Equatable, Sendable {
    public let vcpuCount: Int
    /// 1, or 2 with SMT (then `vcpuCount` is 1 or even, as Firecracker requires).
    public let threadsPerCore: Int

    public init(vcpuCount: Int, smt: Bool = false) {
        self.vcpuCount = vcpuCount
        threadsPerCore = smt && vcpuCount > 1 ? 2 : 1
    }

    /// Bits of the x2APIC ID that index threads within a core.
    public var threadIdShift: UInt32 { threadsPerCore == 2 ? 1 : 0 }

    /// Bits of the x2APIC ID below the package ID (threads and cores).
    public var coreIdShift: UInt32 {
        var shift: UInt32 = 0
        while (1 << shift) < vcpuCount { shift += 1 }
        return shift
    }

    /// Addressable core IDs per package (a power of two), what leaves 1 and 4 encode.
    public var addressableIds: UInt32 { 1 << coreIdShift }

    /// The CPUID a vCPU sees: KVM's supported table with the topology fields set for
    /// `apicId`. Hypervisor leaves (0x40000000-0x4FFFFFFF) are passed through untouched.
    public func cpuid(for apicId: UInt32, from supported: [CpuidEntry]) -> [CpuidEntry] {
        let count = UInt32(vcpuCount)
        let isAMD = supported.first { $0.function == 0 }.map(Self.isAMD) ?? false
        // KVM (Linux >= 6.2) reports only sub-leaf 0 of the extended topology leaves; the
        // guest needs the core level too, or it sees one package per vCPU.
        var table = supported.filter { $0.function != 0xB && $0.function != 0x1F }
        for leaf: UInt32 in [0xB, 0x1F] where supported.contains(where: { $0.function == leaf }) {
            for index: UInt32 in 0...2 {
                table.append(CpuidEntry(function: leaf, index: index, flags: CpuidEntry.significantIndex))
            }
        }
        return table.map { original in
            var entry = original
            switch entry.function {
            case 0x1:
                // EBX[31:24] initial APIC ID, EBX[23:16] logical processors per package.
                entry.ebx = (entry.ebx & 0x0000_FFFF) | (apicId << 24) | ((addressableIds & 0xFF) << 16)
                if count > 1 { entry.edx |= 1 << 28 } else { entry.edx &= ~(1 << 28) }  // HTT
                entry.ecx |= 1 << 31  // running under a hypervisor
            case 0x4 where !isAMD:
                // EAX[31:26] cores per package - 1; EAX[25:14] threads sharing this cache - 1:
                // L1 and L2 are a core's (its threads'), L3 the package's.
                let level = (entry.eax >> 5) & 0x7
                let threads = UInt32(threadsPerCore)
                let sharing: UInt32 = level >= 3 ? addressableIds - 1 : threads - 1
                let cores = addressableIds >> threadIdShift
                entry.eax = (entry.eax & 0x0000_3FFF) | ((sharing & 0xFFF) << 14) | (((cores - 1) & 0x3F) << 26)
            case 0xB, 0x1F:
                entry.edx = apicId
                switch entry.index {
                case 0:  // SMT level: threads per core
                    entry.eax = threadIdShift
                    entry.ebx = UInt32(threadsPerCore)
                    entry.ecx = (1 << 8) | 0
                case 1:  // core level: all vCPUs in one package
                    entry.eax = coreIdShift
                    entry.ebx = count
                    entry.ecx = (2 << 8) | 1
                default:  // invalid level terminates the enumeration
                    entry.eax = 0
                    entry.ebx = 0
                    entry.ecx = entry.index & 0xFF
                }
            case 0x8000_0008 where isAMD:
                // ECX[15:12] APIC ID size, ECX[7:0] number of cores - 1.
                entry.ecx = (entry.ecx & ~UInt32(0xF0FF)) | (coreIdShift << 12) | ((count - 1) & 0xFF)
            case 0x8000_001E where isAMD:
                // EBX[15:8] threads per compute unit - 1, EBX[7:0] the compute unit (core) id.
                entry.eax = apicId
                entry.ebx = (UInt32(threadsPerCore - 1) << 8) | ((apicId >> threadIdShift) & 0xFF)
                entry.ecx = 0  // node 0, one node per package
            default:
                break
            }
            return entry
        }
    }

    static func isAMD(_ leaf0: CpuidEntry) -> Bool {
        // "AuthenticAMD": EBX "Auth", EDX "enti", ECX "cAMD"; Hygon uses the AMD layout too.
        (leaf0.ebx == 0x6874_7541 && leaf0.edx == 0x6974_6E65 && leaf0.ecx == 0x444D_4163)
            || (leaf0.ebx == 0x6F67_7948 && leaf0.edx == 0x6E65_476E && leaf0.ecx == 0x656E_6975)
    }
}
