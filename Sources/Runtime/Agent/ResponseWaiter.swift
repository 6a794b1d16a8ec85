#if canImport(Glibc)
import Glibc
#endif
import AgentProtocol

/// Where one `AgentClient` call's caller thread waits for its outcome: the reader thread
/// (a response, or the connection's end) or a failed send resolves it. A mutex and a
/// condition variable on the monotonic clock, so a timeout does not move with the wall clock.
// @unchecked: `outcome` is read and written only while `mutex` is held.
final class ResponseWaiter: @unchecked Sendable {  // `outcome` under the pthread `mutex`
    typealias Outcome = Result<Ttrpc_Response, AgentClientError>

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var outcome: Outcome?

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Hands over the call's outcome; the first one wins (later ones are dropped).
    func resolve(_ result: Outcome) {
        pthread_mutex_lock(mutex)
        if outcome == nil {
            outcome = result
            pthread_cond_signal(condition)
        }
        pthread_mutex_unlock(mutex)
    }

    /// Waits for the outcome, until `deadline` (CLOCK_MONOTONIC) when one is given; nil
    /// when the deadline passed first.
    func wait(until deadline: timespec?) -> Outcome? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while outcome == nil {
            if var deadline {
                if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { return outcome }
            } else {
                pthread_cond_wait(condition, mutex)
            }
        }
        return outcome
    }

    /// The monotonic time `duration` from now, as `wait(until:)` takes it (a negative
    /// duration is now; a huge one is clamped to about 68 years).
    static func deadline(after duration: Duration) -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let (seconds, attoseconds) = duration.components
        let wait = seconds < 0 ? 0 : min(seconds, Int64(Int32.max)) * 1_000_000_000 + attoseconds / 1_000_000_000
        let nanoseconds = Int64(now.tv_nsec) + wait % 1_000_000_000
        return timespec(tv_sec: now.tv_sec + Int(wait / 1_000_000_000 + nanoseconds / 1_000_000_000),
                        tv_nsec: Int(nanoseconds % 1_000_000_000))
    }
}
