import Testing
@testable import VMM

@Suite struct CpuTopologyTests {
    static let amdLeaf0 = CpuidEntry(function: 0, eax: 0x10, ebx: 0x6874_7541, ecx: 0x444D_4163, edx: 0x6974_6E65)
    static let intelLeaf0 = CpuidEntry(function: 0, eax: 0x1F, ebx: 0x756E_6547, ecx: 0x6C65_746E, edx: 0x4965_6E69)

    static func table(_ leaf0: CpuidEntry) -> [CpuidEntry] {
        [
            leaf0,
            CpuidEntry(function: 1, eax: 0xA0F11, ebx: 0xFF00_0800, ecx: 0x7ED8_3203, edx: 0x178B_FBFF),
            CpuidEntry(function: 4, index: 0, flags: 1, eax: 0x121, ebx: 0x1C0_003F),
            CpuidEntry(function: 4, index: 3, flags: 1, eax: 0x163, ebx: 0x3C0_003F),
            // What KVM on Linux >= 6.2 reports: sub-leaf 0 only.
            CpuidEntry(function: 0xB, index: 0, flags: 1, eax: 1, ebx: 2, ecx: 0x100, edx: 9),
            CpuidEntry(function: 0x4000_0000, eax: 0x4000_0001, ebx: 0x4B4D_564B, ecx: 0x564B_4D56, edx: 0x4D),
            CpuidEntry(function: 0x4000_0001, eax: 0x0100_7AFB, edx: 0x5A5A),
            CpuidEntry(function: 0x8000_0008, eax: 0x3030, ecx: 0x7007),
            CpuidEntry(function: 0x8000_001E, eax: 0x99, ebx: 0x199, ecx: 0x99),
        ]
    }

    @Test func perVcpuApicIdsAndCounts() {
        let topology = CpuTopology(vcpuCount: 3)
        #expect(topology.coreIdShift == 2)
        let cpu2 = topology.cpuid(for: 2, from: Self.table(Self.intelLeaf0))
        let leaf1 = cpu2.first { $0.function == 1 }!
        #expect(leaf1.ebx >> 24 == 2)
        #expect((leaf1.ebx >> 16) & 0xFF == 4)  // addressable IDs: the next power of two
        #expect(leaf1.ebx & 0xFFFF == 0x0800)  // CLFLUSH size kept
        #expect(leaf1.edx & (1 << 28) != 0)  // HTT: more than one logical processor
        #expect(leaf1.ecx & (1 << 31) != 0)  // hypervisor present
        let smt = cpu2.first { $0.function == 0xB && $0.index == 0 }!
        #expect(smt.eax == 0 && smt.ebx == 1 && smt.ecx == 0x100 && smt.edx == 2)
        let core = cpu2.first { $0.function == 0xB && $0.index == 1 }!
        #expect(core.eax == 2 && core.ebx == 3 && core.ecx == 0x201 && core.edx == 2)
        let invalid = cpu2.first { $0.function == 0xB && $0.index == 2 }!
        #expect(invalid.eax == 0 && invalid.ebx == 0 && invalid.ecx == 2 && invalid.edx == 2)
        let l1 = cpu2.first { $0.function == 4 && $0.index == 0 }!
        #expect(l1.eax >> 26 == 3 && (l1.eax >> 14) & 0xFFF == 0 && l1.eax & 0x3FFF == 0x121)
        let l3 = cpu2.first { $0.function == 4 && $0.index == 3 }!
        #expect((l3.eax >> 14) & 0xFFF == 3)
        // Sub-leaves 1 and 2 were synthesized, flagged as indexed.
        #expect(cpu2.filter { $0.function == 0xB }.map(\.index) == [0, 1, 2])
        #expect(cpu2.filter { $0.function == 0xB }.allSatisfy { $0.flags == CpuidEntry.significantIndex })
        #expect(!cpu2.contains { $0.function == 0x1F })  // not reported by KVM: not invented
        // AMD-only leaves untouched on Intel
        #expect(cpu2.first { $0.function == 0x8000_001E }!.eax == 0x99)
    }

    /// Firecracker's `smt`: two threads per core, the APIC ID's bit 0 the thread.
    @Test func smtGivesEachCoreTwoThreads() {
        let topology = CpuTopology(vcpuCount: 4, smt: true)
        #expect(topology.threadsPerCore == 2 && topology.threadIdShift == 1 && topology.coreIdShift == 2)
        let cpu3 = topology.cpuid(for: 3, from: Self.table(Self.intelLeaf0))
        let smt = cpu3.first { $0.function == 0xB && $0.index == 0 }!
        #expect(smt.eax == 1 && smt.ebx == 2 && smt.ecx == 0x100 && smt.edx == 3)
        let core = cpu3.first { $0.function == 0xB && $0.index == 1 }!
        #expect(core.eax == 2 && core.ebx == 4 && core.ecx == 0x201)
        let l1 = cpu3.first { $0.function == 4 && $0.index == 0 }!
        #expect((l1.eax >> 14) & 0xFFF == 1 && l1.eax >> 26 == 1)  // shared by 2 threads; 2 cores
        let l3 = cpu3.first { $0.function == 4 && $0.index == 3 }!
        #expect((l3.eax >> 14) & 0xFFF == 3)
        let amd = topology.cpuid(for: 3, from: Self.table(Self.amdLeaf0)).first { $0.function == 0x8000_001E }!
        #expect(amd.eax == 3 && amd.ebx == 0x101)  // 2 threads per compute unit, unit 1
        // One vCPU has no sibling: no SMT level to report.
        #expect(CpuTopology(vcpuCount: 1, smt: true).threadsPerCore == 1)
        #expect(CpuTopology(vcpuCount: 4).threadsPerCore == 1)
    }

    @Test func amdLeaves() {
        let cpu1 = CpuTopology(vcpuCount: 2).cpuid(for: 1, from: Self.table(Self.amdLeaf0))
        let ext8 = cpu1.first { $0.function == 0x8000_0008 }!
        #expect(ext8.ecx & 0xFF == 1 && (ext8.ecx >> 12) & 0xF == 1 && ext8.eax == 0x3030)
        let ext1e = cpu1.first { $0.function == 0x8000_001E }!
        #expect(ext1e.eax == 1 && ext1e.ebx == 1 && ext1e.ecx == 0)
        #expect(cpu1.first { $0.function == 4 }!.eax == 0x121)  // leaf 4 is Intel's
    }

    @Test func singleVcpuHasNoHtt() {
        let leaf1 = CpuTopology(vcpuCount: 1).cpuid(for: 0, from: Self.table(Self.intelLeaf0)).first { $0.function == 1 }!
        #expect(leaf1.edx & (1 << 28) == 0)
        #expect(leaf1.ebx >> 16 == 1)
    }

    @Test func hypervisorLeavesPassThroughUnchanged() {
        let original = Self.table(Self.amdLeaf0)
        for count in [1, 4] {
            let adjusted = CpuTopology(vcpuCount: count).cpuid(for: 0, from: original)
            #expect(adjusted.count == original.count + 2)  // 0xB sub-leaves 1 and 2 added
            #expect(adjusted.filter { $0.function >= 0x4000_0000 && $0.function < 0x5000_0000 }
                == original.filter { $0.function >= 0x4000_0000 && $0.function < 0x5000_0000 })
        }
    }

    /// The real KVM table: our adjustment keeps every hypervisor leaf KVM reports.
    @Test func realKvmTable() throws {
        let kvm = try Kvm()
        let supported = try kvm.supportedCpuid()
        #expect(supported.contains { $0.function == 0x4000_0000 })
        let adjusted = CpuTopology(vcpuCount: 2).cpuid(for: 1, from: supported)
        if supported.contains(where: { $0.function == 0xB }) {
            let core = try #require(adjusted.first { $0.function == 0xB && $0.index == 1 })
            #expect(core.ebx == 2 && core.ecx == 0x201 && core.edx == 1)
        }
        #expect(adjusted.filter { $0.function >= 0x4000_0000 && $0.function < 0x5000_0000 }
            == supported.filter { $0.function >= 0x4000_0000 && $0.function < 0x5000_0000 })
        #expect(adjusted.first { $0.function == 1 }!.ebx >> 24 == 1)
    }
}
