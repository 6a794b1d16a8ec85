// CKVM: the KVM ioctls under the Swift VMM.
//
// Swift cannot call the variadic ioctl(2), cannot expand the _IO* request macros and
// cannot reach some anonymous unions of the kernel ABI. Each function here is exactly
// one ioctl (or one field access of struct kvm_run) with a typed signature; there is no
// logic. The other Linux calls Swift cannot make are in CLinux.
#ifndef CKVM_H
#define CKVM_H

#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <stdint.h>

// Every pointer passed to or returned by these wrappers is non-null.
#pragma clang assume_nonnull begin

// MARK: - /dev/kvm (system) ioctls

static inline int ckvm_get_api_version(int kvm) { return ioctl(kvm, KVM_GET_API_VERSION, 0); }
static inline int ckvm_check_extension(int fd, int cap) { return ioctl(fd, KVM_CHECK_EXTENSION, cap); }
static inline int ckvm_create_vm(int kvm, unsigned long type) { return ioctl(kvm, KVM_CREATE_VM, type); }
static inline int ckvm_get_vcpu_mmap_size(int kvm) { return ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0); }
static inline int ckvm_get_supported_cpuid(int kvm, struct kvm_cpuid2 *cpuid) { return ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid); }
static inline int ckvm_get_msr_index_list(int kvm, struct kvm_msr_list *list) { return ioctl(kvm, KVM_GET_MSR_INDEX_LIST, list); }

// MARK: - VM ioctls

static inline int ckvm_create_vcpu(int vm, unsigned long id) { return ioctl(vm, KVM_CREATE_VCPU, id); }
static inline int ckvm_set_user_memory_region(int vm, const struct kvm_userspace_memory_region *r) { return ioctl(vm, KVM_SET_USER_MEMORY_REGION, r); }
static inline int ckvm_set_tss_addr(int vm, unsigned long addr) { return ioctl(vm, KVM_SET_TSS_ADDR, addr); }
static inline int ckvm_set_identity_map_addr(int vm, const uint64_t *addr) { return ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, addr); }
static inline int ckvm_create_irqchip(int vm) { return ioctl(vm, KVM_CREATE_IRQCHIP, 0); }
static inline int ckvm_create_pit2(int vm, const struct kvm_pit_config *config) { return ioctl(vm, KVM_CREATE_PIT2, config); }
static inline int ckvm_irqfd(int vm, const struct kvm_irqfd *irqfd) { return ioctl(vm, KVM_IRQFD, irqfd); }
static inline int ckvm_ioeventfd(int vm, const struct kvm_ioeventfd *ioeventfd) { return ioctl(vm, KVM_IOEVENTFD, ioeventfd); }
static inline int ckvm_irq_line(int vm, const struct kvm_irq_level *level) { return ioctl(vm, KVM_IRQ_LINE, level); }
// struct kvm_dirty_log's bitmap pointer is in an anonymous union.
static inline int ckvm_get_dirty_log(int vm, uint32_t slot, void *bitmap) {
    struct kvm_dirty_log log = {.slot = slot, .dirty_bitmap = bitmap};
    return ioctl(vm, KVM_GET_DIRTY_LOG, &log);
}

// MARK: - vCPU ioctls

static inline int ckvm_run(int vcpu) { return ioctl(vcpu, KVM_RUN, 0); }
static inline int ckvm_get_regs(int vcpu, struct kvm_regs *regs) { return ioctl(vcpu, KVM_GET_REGS, regs); }
static inline int ckvm_set_regs(int vcpu, const struct kvm_regs *regs) { return ioctl(vcpu, KVM_SET_REGS, regs); }
static inline int ckvm_get_sregs(int vcpu, struct kvm_sregs *sregs) { return ioctl(vcpu, KVM_GET_SREGS, sregs); }
static inline int ckvm_set_sregs(int vcpu, const struct kvm_sregs *sregs) { return ioctl(vcpu, KVM_SET_SREGS, sregs); }
static inline int ckvm_get_fpu(int vcpu, struct kvm_fpu *fpu) { return ioctl(vcpu, KVM_GET_FPU, fpu); }
static inline int ckvm_set_fpu(int vcpu, const struct kvm_fpu *fpu) { return ioctl(vcpu, KVM_SET_FPU, fpu); }
static inline int ckvm_set_cpuid2(int vcpu, const struct kvm_cpuid2 *cpuid) { return ioctl(vcpu, KVM_SET_CPUID2, cpuid); }
static inline int ckvm_set_msrs(int vcpu, const struct kvm_msrs *msrs) { return ioctl(vcpu, KVM_SET_MSRS, msrs); }
static inline int ckvm_get_msrs(int vcpu, struct kvm_msrs *msrs) { return ioctl(vcpu, KVM_GET_MSRS, msrs); }
static inline int ckvm_get_lapic(int vcpu, struct kvm_lapic_state *lapic) { return ioctl(vcpu, KVM_GET_LAPIC, lapic); }
static inline int ckvm_set_lapic(int vcpu, const struct kvm_lapic_state *lapic) { return ioctl(vcpu, KVM_SET_LAPIC, lapic); }

// MARK: - kvm_run field access (anonymous unions)

static inline struct kvm_run *ckvm_run_struct(void *mapping) { return (struct kvm_run *)mapping; }
static inline uint32_t ckvm_run_exit_reason(const struct kvm_run *run) { return run->exit_reason; }
static inline void ckvm_run_set_immediate_exit(struct kvm_run *run, uint8_t value) { __atomic_store_n(&run->immediate_exit, value, __ATOMIC_SEQ_CST); }
static inline typeof(((struct kvm_run *)0)->io) *ckvm_run_io(struct kvm_run *run) { return &run->io; }
static inline typeof(((struct kvm_run *)0)->mmio) *ckvm_run_mmio(struct kvm_run *run) { return &run->mmio; }
static inline typeof(((struct kvm_run *)0)->system_event) *ckvm_run_system_event(struct kvm_run *run) { return &run->system_event; }
static inline typeof(((struct kvm_run *)0)->internal) *ckvm_run_internal(struct kvm_run *run) { return &run->internal; }
static inline typeof(((struct kvm_run *)0)->fail_entry) *ckvm_run_fail_entry(struct kvm_run *run) { return &run->fail_entry; }

#pragma clang assume_nonnull end

#endif
