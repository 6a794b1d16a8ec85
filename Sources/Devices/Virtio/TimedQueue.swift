import VMM

/// A device timer and the queue it resumes: the transport watches the timer on the event
/// loop and, when it fires, calls `fired` (which must read the timer) and then runs the
/// queue under the transport lock, as if the driver had rung. A rate limiter's refill
/// and the balloon's statistics polling work this way.
public struct TimedQueue: Sendable {
    public let timer: TimerFd
    public let queue: Int
    public let fired: @Sendable () -> Void

    public init(timer: TimerFd, queue: Int, fired: @escaping @Sendable () -> Void) {
        self.timer = timer
        self.queue = queue
        self.fired = fired
    }
}
