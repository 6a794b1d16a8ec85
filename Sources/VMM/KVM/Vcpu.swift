import CKVM
import CLinux
import Glibc
import LinuxSupport

/// A KVM vCPU: its register state and the shared `kvm_run` page that `KVM_RUN` fills
/// on every exit.
public final class Vcpu: @unchecked Sendable {  // the kvm_run mapping is read and written by the vCPU's own thread (KVM serialises its ioctls)
    public let id: Int
    public let fd: OwnedFileDescriptor
    let runMapping: UnsafeMutableRawPointer
    let runMappingSize: Int

    init(id: Int, fd: OwnedFileDescriptor, mmapSize: Int) throws {
        self.id = id
        self.fd = fd
        let mapping = mmap(nil, mmapSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, 0)
        if mapping == MAP_FAILED || mapping == nil { throw SystemError("mmap kvm_run (vCPU \(id))") }
        runMapping = mapping!
        runMappingSize = mmapSize
    }

    deinit {
        munmap(runMapping, runMappingSize)
    }

    public var run: UnsafeMutablePointer<kvm_run> { ckvm_run_struct(runMapping) }

    /// Enters the guest until the next exit. Returns false when interrupted (EINTR/EAGAIN).
    @inline(__always)
    public func runOnce() throws -> Bool {
        if ckvm_run(fd.rawValue) < 0 {
            if errno == EINTR || errno == EAGAIN { return false }
            throw SystemError("KVM_RUN (vCPU \(id))")
        }
        return true
    }

    /// Makes the next (or the current) `KVM_RUN` return at once; safe from any thread.
    public func setImmediateExit(_ value: Bool) {
        ckvm_run_set_immediate_exit(run, value ? 1 : 0)
    }

    public func getRegs() throws -> kvm_regs {
        var regs = kvm_regs()
        try check("KVM_GET_REGS (vCPU \(id))", ckvm_get_regs(fd.rawValue, &regs))
        return regs
    }

    public func setRegs(_ regs: kvm_regs) throws {
        var regs = regs
        try check("KVM_SET_REGS (vCPU \(id))", ckvm_set_regs(fd.rawValue, &regs))
    }

    public func getSregs() throws -> kvm_sregs {
        var sregs = kvm_sregs()
        try check("KVM_GET_SREGS (vCPU \(id))", ckvm_get_sregs(fd.rawValue, &sregs))
        return sregs
    }

    public func setSregs(_ sregs: kvm_sregs) throws {
        var sregs = sregs
        try check("KVM_SET_SREGS (vCPU \(id))", ckvm_set_sregs(fd.rawValue, &sregs))
    }

    public func setFpu(_ fpu: kvm_fpu) throws {
        var fpu = fpu
        try check("KVM_SET_FPU (vCPU \(id))", ckvm_set_fpu(fd.rawValue, &fpu))
    }

    public func setCpuid(_ entries: [CpuidEntry]) throws {
        try CpuidTable.withTable(entries) { table in
            _ = try check("KVM_SET_CPUID2 (vCPU \(id))", ckvm_set_cpuid2(fd.rawValue, table))
        }
    }

    /// Sets MSRs; KVM stops at the first one it refuses, which the error names.
    public func setMsrs(_ msrs: [(index: UInt32, value: UInt64)]) throws {
        let header = MemoryLayout<kvm_msrs>.size
        let raw = UnsafeMutableRawPointer.allocate(byteCount: header + msrs.count * MemoryLayout<kvm_msr_entry>.stride, alignment: 8)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: header + msrs.count * MemoryLayout<kvm_msr_entry>.stride)
        let table = raw.bindMemory(to: kvm_msrs.self, capacity: 1)
        table.pointee.nmsrs = UInt32(msrs.count)
        let entries = (raw + header).bindMemory(to: kvm_msr_entry.self, capacity: msrs.count)
        for (i, msr) in msrs.enumerated() {
            entries[i].index = msr.index
            entries[i].data = msr.value
        }
        let written = try check("KVM_SET_MSRS (vCPU \(id))", ckvm_set_msrs(fd.rawValue, table))
        if written != msrs.count {
            let failed = msrs[Int(written)].index
            throw SystemError("KVM_SET_MSRS (vCPU \(id), MSR 0x\(String(failed, radix: 16)))", errno: EINVAL)
        }
    }

    public func getLapic() throws -> kvm_lapic_state {
        var lapic = kvm_lapic_state()
        try check("KVM_GET_LAPIC (vCPU \(id))", ckvm_get_lapic(fd.rawValue, &lapic))
        return lapic
    }

    public func setLapic(_ lapic: kvm_lapic_state) throws {
        var lapic = lapic
        try check("KVM_SET_LAPIC (vCPU \(id))", ckvm_set_lapic(fd.rawValue, &lapic))
    }
}
