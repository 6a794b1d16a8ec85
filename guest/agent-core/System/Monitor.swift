#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A mutex with one condition variable: the agent's only synchronization primitive
/// (no Foundation in the static binary). `wait` is used in `while` loops by callers.
final class Monitor: @unchecked Sendable {  // it is the lock: pthread mutex and condition, initialised in init
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()

    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    @discardableResult
    func locked<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }

    /// Waits for a broadcast; call only while holding the lock (inside `locked`).
    func wait() {
        pthread_cond_wait(&condition, &mutex)
    }

    /// Waits up to `milliseconds`; returns false on timeout. Call inside `locked`.
    func wait(milliseconds: Int) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var deadline = now
        let nanos = Int(now.tv_nsec) + (milliseconds % 1000) * 1_000_000
        deadline.tv_sec += milliseconds / 1000 + nanos / 1_000_000_000
        deadline.tv_nsec = nanos % 1_000_000_000
        return pthread_cond_timedwait(&condition, &mutex, &deadline) == 0
    }

    func broadcast() {
        pthread_cond_broadcast(&condition)
    }
}
