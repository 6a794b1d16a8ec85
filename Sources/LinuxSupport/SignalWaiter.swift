#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Signals taken synchronously: blocked in every thread (call `block` before starting any,
/// threads inherit the mask) and received by sigwait, so that what a signal does runs as
/// ordinary code, not in a handler restricted to async-signal-safe calls.
public struct SignalWaiter: @unchecked Sendable {  // sigset_t is a plain bit set, never mutated after init
    private let set: sigset_t

    /// Blocks `signals` in the calling thread (and so in every thread it starts later).
    public static func block(_ signals: [Int32]) -> SignalWaiter {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        return SignalWaiter(set: set)
    }

    /// Waits on the calling thread for the next of the blocked signals.
    public func next() -> Int32 {
        var set = self.set
        var signal: Int32 = 0
        while sigwait(&set, &signal) != 0 {}
        return signal
    }

    /// Hands each blocked signal, as it arrives, to `handler` on a detached thread.
    public func handOff(to handler: @escaping (Int32) -> Void) throws(SystemError) {
        let waiter = self
        try PosixThread.start(detached: true, stackSize: 256 << 10) {
            while true { handler(waiter.next()) }
        }
    }
}
