import CKVM
import CLinux

/// The architectural state a vCPU starts in for each boot protocol: registers, segment and
/// control registers, MSRs, FPU and local APIC. Pure values, applied by `apply(to:)`.
public struct VcpuBootState {
    public var bootProtocol: BootProtocol
    public var entry: UInt64

    public init(bootProtocol: BootProtocol, entry: UInt64) {
        self.bootProtocol = bootProtocol
        self.entry = entry
    }

    static let cr0ProtectedMode: UInt64 = 1 << 0
    static let cr0ExtensionType: UInt64 = 1 << 4
    static let cr0Paging: UInt64 = 1 << 31
    static let cr4PAE: UInt64 = 1 << 5
    static let eferLME: UInt64 = 1 << 8
    static let eferLMA: UInt64 = 1 << 10

    /// General registers: the entry point, and boot_params (RSI) or hvm_start_info (RBX).
    public var regs: kvm_regs {
        var regs = kvm_regs()
        regs.rflags = 0x2  // reserved bit 1; interrupts off
        regs.rip = entry
        switch bootProtocol {
        case .linux64:
            regs.rsi = X86MemoryLayout.zeroPageAddress
            regs.rsp = X86MemoryLayout.bootStackPointer
            regs.rbp = X86MemoryLayout.bootStackPointer
        case .pvh:
            regs.rbx = X86MemoryLayout.pvhStartInfoAddress
        }
        return regs
    }

    public var code: SegmentDescriptor { bootProtocol == .linux64 ? .code64 : .code32 }

    /// Segment and control registers, starting from KVM's reset values (which keep the APIC base).
    public func sregs(from initial: kvm_sregs) -> kvm_sregs {
        var sregs = initial
        sregs.cs = code.kvmSegment
        let data = SegmentDescriptor.data.kvmSegment
        sregs.ds = data
        sregs.es = data
        sregs.fs = data
        sregs.gs = data
        sregs.ss = data
        sregs.tr = SegmentDescriptor.tss.kvmSegment
        sregs.gdt.base = X86MemoryLayout.gdtAddress
        sregs.gdt.limit = UInt16(SegmentDescriptor.gdt(code: code).count * 8 - 1)
        sregs.idt.base = X86MemoryLayout.idtAddress
        sregs.idt.limit = 7
        switch bootProtocol {
        case .linux64:
            sregs.cr0 = Self.cr0ProtectedMode | Self.cr0ExtensionType | Self.cr0Paging
            sregs.cr3 = X86MemoryLayout.pml4Address
            sregs.cr4 = Self.cr4PAE
            sregs.efer = Self.eferLME | Self.eferLMA
        case .pvh:
            sregs.cr0 = Self.cr0ProtectedMode | Self.cr0ExtensionType
            sregs.cr3 = 0
            sregs.cr4 = 0
            sregs.efer = 0
        }
        return sregs
    }

    /// x87 and SSE control words at their power-on defaults.
    public static var fpu: kvm_fpu {
        var fpu = kvm_fpu()
        fpu.fcw = 0x37F
        fpu.mxcsr = 0x1F80
        return fpu
    }

    static let mtrrDefType: UInt32 = 0x2FF

    /// MSRs a freshly booted kernel expects cleared or set, as Firecracker and Cloud
    /// Hypervisor set them. Those in KVM's save/restore list are written when listed;
    /// MTRRdefType is not in that list but is emulated whenever CPUID offers MTRRs, and
    /// without it the guest runs with MTRRs (and, before Linux 6.2, PAT) disabled.
    public static func msrs(supported: Set<UInt32>, cpuid: [CpuidEntry]) -> [(index: UInt32, value: UInt64)] {
        let listed: [(UInt32, UInt64)] = [
            (0x174, 0), (0x175, 0), (0x176, 0),  // IA32_SYSENTER_CS/ESP/EIP
            (0xC000_0081, 0), (0xC000_0082, 0), (0xC000_0083, 0), (0xC000_0084, 0),  // STAR, LSTAR, CSTAR, SFMASK
            (0xC000_0102, 0),  // KERNEL_GS_BASE
            (0x1A0, 1),  // IA32_MISC_ENABLE: fast strings
        ]
        var msrs = listed.filter { supported.contains($0.0) }.map { (index: $0.0, value: $0.1) }
        let hasMtrr = cpuid.contains { $0.function == 1 && $0.edx & (1 << 12) != 0 }
        if hasMtrr { msrs.append((index: mtrrDefType, value: (1 << 11) | 6)) }  // enabled, write-back
        return msrs
    }

    static let lvt0Offset = 0x350
    static let lvt1Offset = 0x360
    static let deliveryModeExtINT: UInt32 = 0x7
    static let deliveryModeNMI: UInt32 = 0x4

    /// LINT0 as ExtINT (the PIC's output) and LINT1 as NMI: the virtual-wire wiring the MP
    /// table and MADT describe.
    public static func lapic(from initial: kvm_lapic_state) -> kvm_lapic_state {
        var lapic = initial
        withUnsafeMutableBytes(of: &lapic.regs) { regs in
            func set(_ offset: Int, mode: UInt32) {
                let old = regs.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
                regs.storeBytes(of: (old & ~0x700) | (mode << 8), toByteOffset: offset, as: UInt32.self)
            }
            set(lvt0Offset, mode: deliveryModeExtINT)
            set(lvt1Offset, mode: deliveryModeNMI)
        }
        return lapic
    }

    /// Applies everything to a vCPU that has not run yet.
    public func apply(to vcpu: Vcpu, cpuid: [CpuidEntry], supportedMsrs: Set<UInt32>) throws {
        try vcpu.setCpuid(cpuid)
        try vcpu.setMsrs(Self.msrs(supported: supportedMsrs, cpuid: cpuid))
        try vcpu.setRegs(regs)
        try vcpu.setSregs(sregs(from: vcpu.getSregs()))
        try vcpu.setFpu(Self.fpu)
        try vcpu.setLapic(Self.lapic(from: vcpu.getLapic()))
    }
}
