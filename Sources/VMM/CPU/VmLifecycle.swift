import CKVM
import Glibc
import Synchronization

/// The one place that decides a VM is stopping: the first reason reported wins, every
/// vCPU is kicked out of KVM_RUN (immediate_exit + a signal to its thread), and whoever
/// waits in `waitForExit` wakes up.
public final class VmLifecycle: @unchecked Sendable {
    private struct State {
        var reason: VmExitReason?
        var vcpus: [(vcpu: Vcpu, thread: pthread_t)] = []
    }

    private let state = Mutex(State())
    private let stopFlag = Atomic<Bool>(false)
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    /// The real-time signal used to kick vCPU threads; its handler does nothing, so the
    /// only effect is that a blocking KVM_RUN returns EINTR.
    public static let kickSignal = ckvm_sigrtmin()

    public init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        Self.installKickHandler()
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    private static let kickHandlerInstalled: Bool = {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART: KVM_RUN must return EINTR
        sigaction(kickSignal, &action, nil)
        return true
    }()

    static func installKickHandler() {
        _ = kickHandlerInstalled
    }

    public var isStopping: Bool { stopFlag.load(ordering: .acquiring) }

    public var reason: VmExitReason? { state.withLock { $0.reason } }

    /// Registers a running vCPU thread so that `stop` can kick it.
    public func attach(_ vcpu: Vcpu, thread: pthread_t) {
        let stopping = state.withLock { s -> Bool in
            s.vcpus.append((vcpu, thread))
            return s.reason != nil
        }
        if stopping { kick(vcpu, thread) }
    }

    /// Records `reason` (unless one is already recorded) and stops every vCPU.
    public func stop(_ reason: VmExitReason) {
        let vcpus = state.withLock { s -> [(vcpu: Vcpu, thread: pthread_t)] in
            if s.reason == nil { s.reason = reason }
            return s.vcpus
        }
        stopFlag.store(true, ordering: .releasing)
        for (vcpu, thread) in vcpus { kick(vcpu, thread) }
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    private func kick(_ vcpu: Vcpu, _ thread: pthread_t) {
        vcpu.setImmediateExit(true)
        _ = ckvm_pthread_kill(thread, Self.kickSignal)
    }

    /// Blocks until some component calls `stop`, then returns the winning reason.
    public func waitForExit() -> VmExitReason {
        pthread_mutex_lock(mutex)
        while !isStopping { pthread_cond_wait(condition, mutex) }
        pthread_mutex_unlock(mutex)
        return reason ?? .vmmError("stopped without a reason")
    }
}
