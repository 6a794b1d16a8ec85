import VMM

// The VMM types that are part of Machine's own interface, named here so that Machine's
// users (API, Runtime, kata-vmm) need not import VMM, which Package.swift does not give them.

/// Why a microVM stopped: what `MicroVM.waitForExit()` returns and `stop(_:)` takes.
public typealias VmExitReason = VMM.VmExitReason

/// The boot-time reference points (process start, InstanceStart) that a host marks and
/// `MicroVM` reports its first KVM_RUN against.
public typealias ProcessClock = VMM.ProcessClock

/// How the kernel is entered (`VmConfig.bootProtocol`); nil there means the image decides.
public typealias BootProtocol = VMM.BootProtocol
