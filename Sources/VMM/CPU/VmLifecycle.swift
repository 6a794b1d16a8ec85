import CLinux
import Glibc
import Synchronization

/// The one place that decides a VM is stopping or pausing: the first stop reason reported
/// wins, every vCPU is kicked out of KVM_RUN (immediate_exit + a signal to its thread), and
/// whoever waits in `waitForExit` wakes up. A pause kicks the vCPUs the same way and parks
/// each thread on a condition until `resume`; `pause` returns once every vCPU is parked.
public final class VmLifecycle: @unchecked Sendable {  // pause counters under the pthread `mutex`, the rest in `state` (Mutex) and `stopFlag` (Atomic)
    private struct State {
        var reason: VmExitReason?
        var vcpus: [(vcpu: Vcpu, thread: pthread_t)] = []
    }

    /// Guarded by `mutex`: whether vCPUs must park, and how many are parked.
    private var pauseRequested = false
    private var parkedVcpus = 0
    /// vCPU threads that have returned (they can no longer park).
    private var finishedVcpus = 0

    private let state = Mutex(State())
    private let stopFlag = Atomic<Bool>(false)
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    /// The real-time signal used to kick vCPU threads; its handler does nothing, so the
    /// only effect is that a blocking KVM_RUN returns EINTR.
    public static let kickSignal = clinux_sigrtmin()

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
        if stopping || isPaused { kick(vcpu, thread) }
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

    /// Whether the vCPUs are (being) held out of the guest.
    public var isPaused: Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return pauseRequested
    }

    /// Kicks every vCPU out of KVM_RUN and returns once each one is parked (or the VM is
    /// stopping, or its thread has ended). `expectedVcpus`: how many vCPU threads run.
    public func pause(expectedVcpus: Int) {
        pthread_mutex_lock(mutex)
        pauseRequested = true
        pthread_mutex_unlock(mutex)
        let vcpus = state.withLock { $0.vcpus }
        for (vcpu, thread) in vcpus { kick(vcpu, thread) }
        pthread_mutex_lock(mutex)
        while !isStopping && parkedVcpus + finishedVcpus < expectedVcpus {
            pthread_cond_wait(condition, mutex)
        }
        pthread_mutex_unlock(mutex)
    }

    /// Lets parked vCPUs enter the guest again.
    public func resume() {
        pthread_mutex_lock(mutex)
        pauseRequested = false
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Called by a vCPU thread whose KVM_RUN was interrupted (or that is about to enter):
    /// re-arms KVM_RUN, then parks while a pause is requested. Clearing immediate_exit
    /// before looking at the flags means a kick that races with this call is never lost:
    /// either its immediate_exit lands after the clear, or its flag is seen here.
    public func interrupted(_ vcpu: Vcpu) {
        guard !isStopping else { return }
        vcpu.setImmediateExit(false)
        pthread_mutex_lock(mutex)
        if pauseRequested && !isStopping {
            parkedVcpus += 1
            pthread_cond_broadcast(condition)
            while pauseRequested && !isStopping { pthread_cond_wait(condition, mutex) }
            parkedVcpus -= 1
        }
        pthread_mutex_unlock(mutex)
    }

    /// Called by a vCPU thread as it returns, so that a pause does not wait for it.
    public func vcpuFinished() {
        pthread_mutex_lock(mutex)
        finishedVcpus += 1
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    private func kick(_ vcpu: Vcpu, _ thread: pthread_t) {
        vcpu.setImmediateExit(true)
        _ = clinux_pthread_kill(thread, Self.kickSignal)
    }

    /// Blocks until some component calls `stop`, then returns the winning reason.
    public func waitForExit() -> VmExitReason {
        pthread_mutex_lock(mutex)
        while !isStopping { pthread_cond_wait(condition, mutex) }
        pthread_mutex_unlock(mutex)
        return reason ?? .vmmError("stopped without a reason")
    }
}
