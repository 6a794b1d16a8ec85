import CKVM
import CLinux
import Glibc
import LinuxSupport

/// A KVM virtual machine: memory slots, the in-kernel interrupt controllers and PIT,
/// irqfd/ioeventfd registration, and vCPU creation.
public final class Vm: @unchecked Sendable {  // `nextSlot` changes only in register(_:), while the VM is built; the kernel serialises the ioctls
    public let kvm: Kvm
    public let fd: OwnedFileDescriptor
    private var nextSlot: UInt32 = 0

    init(kvm: Kvm, fd: OwnedFileDescriptor) {
        self.kvm = kvm
        self.fd = fd
    }

    /// Registers every region of `memory` as a KVM memory slot (with dirty logging when the
    /// memory tracks dirty pages); returns each region's slot.
    @discardableResult
    public func register(_ memory: GuestMemory) throws -> [UInt32] {
        var slots: [UInt32] = []
        for region in memory.regions {
            var slot = kvm_userspace_memory_region()
            slot.slot = nextSlot
            slot.guest_phys_addr = region.guestAddress
            slot.memory_size = region.size
            slot.userspace_addr = UInt64(UInt(bitPattern: region.host))
            if memory.dirtyPages != nil { slot.flags = UInt32(KVM_MEM_LOG_DIRTY_PAGES) }
            try check("KVM_SET_USER_MEMORY_REGION (slot \(nextSlot))", ckvm_set_user_memory_region(fd.rawValue, &slot))
            slots.append(nextSlot)
            nextSlot += 1
        }
        return slots
    }

    /// KVM's log of the pages the guest wrote in memory slot `slot` since the last call
    /// (bit i of word w: page 64 w + i), for a slot registered with dirty logging.
    public func dirtyLog(slot: UInt32, pages: Int) throws -> [UInt64] {
        var words = [UInt64](repeating: 0, count: max((pages + 63) / 64, 1))
        try words.withUnsafeMutableBytes { buffer in
            try check("KVM_GET_DIRTY_LOG (slot \(slot))", ckvm_get_dirty_log(fd.rawValue, slot, buffer.baseAddress!))
        }
        return Array(words.prefix((pages + 63) / 64))
    }

    /// Sets up the x86 platform pieces KVM emulates in the kernel: TSS and identity-map
    /// pages for real-mode emulation, the PIC+IOAPIC pair, and the PIT.
    public func setUpX86Platform() throws {
        try check("KVM_SET_TSS_ADDR", ckvm_set_tss_addr(fd.rawValue, UInt(X86MemoryLayout.kvmTssAddress)))
        var identityMap = X86MemoryLayout.kvmIdentityMapAddress
        try check("KVM_SET_IDENTITY_MAP_ADDR", ckvm_set_identity_map_addr(fd.rawValue, &identityMap))
        try check("KVM_CREATE_IRQCHIP", ckvm_create_irqchip(fd.rawValue))
        var pit = kvm_pit_config()
        pit.flags = UInt32(KVM_PIT_SPEAKER_DUMMY)
        try check("KVM_CREATE_PIT2", ckvm_create_pit2(fd.rawValue, &pit))
    }

    /// Routes writes to `eventFd` to interrupt line `gsi` without a VMM exit.
    public func registerIrqfd(_ eventFd: EventFd, gsi: UInt32) throws {
        var irqfd = kvm_irqfd()
        irqfd.fd = UInt32(bitPattern: eventFd.fd.rawValue)
        irqfd.gsi = gsi
        try check("KVM_IRQFD (gsi \(gsi))", ckvm_irqfd(fd.rawValue, &irqfd))
    }

    /// Makes guest writes of `length` bytes to `address` signal `eventFd` in the kernel.
    public func registerIoeventfd(_ eventFd: EventFd, address: UInt64, length: UInt32, isPio: Bool,
                                  datamatch: UInt64? = nil) throws {
        var ioeventfd = kvm_ioeventfd()
        ioeventfd.addr = address
        ioeventfd.len = length
        ioeventfd.fd = eventFd.fd.rawValue
        var flags: UInt32 = 0
        if isPio { flags |= UInt32(1 << kvm_ioeventfd_flag_nr_pio) }
        if let datamatch {
            flags |= UInt32(1 << kvm_ioeventfd_flag_nr_datamatch)
            ioeventfd.datamatch = datamatch
        }
        ioeventfd.flags = flags
        try check("KVM_IOEVENTFD (0x\(String(address, radix: 16)))", ckvm_ioeventfd(fd.rawValue, &ioeventfd))
    }

    /// Raises or lowers a level-triggered interrupt line.
    public func setIrqLine(_ irq: UInt32, high: Bool) throws {
        var level = kvm_irq_level()
        level.irq = irq
        level.level = high ? 1 : 0
        try check("KVM_IRQ_LINE (irq \(irq))", ckvm_irq_line(fd.rawValue, &level))
    }

    public func createVcpu(id: Int) throws -> Vcpu {
        let raw = try check("KVM_CREATE_VCPU (\(id))", ckvm_create_vcpu(fd.rawValue, UInt(id)))
        return try Vcpu(id: id, fd: OwnedFileDescriptor(raw), mmapSize: kvm.vcpuMmapSize)
    }
}
