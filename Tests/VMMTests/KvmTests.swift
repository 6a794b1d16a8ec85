import CKVM
import CLinux
import Testing
@testable import VMM
import LinuxSupport

/// Integration tests against the host's real /dev/kvm.
@Suite struct KvmTests {
    @Test func createsAVmWithPlatformMemoryAndVcpus() throws {
        let kvm = try Kvm()
        #expect(kvm.vcpuMmapSize >= 4096)
        #expect(kvm.maxVcpus >= 1)
        #expect(!(try kvm.supportedMsrs()).isEmpty)
        let vm = try kvm.createVm()
        try vm.setUpX86Platform()
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 16 << 20))
        try vm.register(memory)
        let vcpu = try vm.createVcpu(id: 0)
        let state = VcpuBootState(bootProtocol: .linux64, entry: 0x100000)
        try state.apply(to: vcpu, cpuid: CpuTopology(vcpuCount: 1).cpuid(for: 0, from: kvm.supportedCpuid()),
                        supportedMsrs: kvm.supportedMsrs())
        let regs = try vcpu.getRegs()
        #expect(regs.rip == 0x100000 && regs.rsi == 0x7000)
        let sregs = try vcpu.getSregs()
        #expect(sregs.cr3 == 0x9000 && sregs.efer & 0x500 == 0x500 && sregs.cs.selector == 0x10)
    }

    @Test func errorsNameTheIoctlAndErrno() throws {
        let vm = try Kvm().createVm()
        _ = try vm.createVcpu(id: 0)
        do {
            _ = try vm.createVcpu(id: 0)  // the same id twice
            Issue.record("duplicate vCPU id accepted")
        } catch let error as SystemError {
            #expect(error.operation.contains("KVM_CREATE_VCPU"))
            #expect(error.errno == 17)  // EEXIST
            #expect("\(error)".contains("errno 17"))
        }
    }

    @Test func missingDeviceIsReportedAsSuch() {
        #expect(throws: Kvm.OpenError.missing("/nonexistent/kvm")) { try Kvm(path: "/nonexistent/kvm") }
        #expect(Kvm.OpenError.permissionDenied("/dev/kvm").description.contains("permission denied"))
    }

    @Test func overlappingMemorySlotsAreRefused() throws {
        let vm = try Kvm().createVm()
        let a = try GuestMemory(ranges: [(0, 0x10000)])
        try vm.register(a)
        #expect(throws: SystemError.self) { try vm.register(a) }
    }
}
