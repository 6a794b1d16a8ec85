import Synchronization
import VMM

/// How a device's own event handlers (a tap frame, a vsock RST, an AIO completion) report
/// a ring they found unusable. The transport then, on the event loop and under its lock,
/// sets DEVICE_NEEDS_RESET, disarms the device and logs once. A handler cannot do that
/// itself: it holds the device's lock, and the transport's lock is always taken first.
public final class VirtioDeviceFailure: Sendable {
    private let first = Mutex<String?>(nil)
    /// Watched by the transport.
    public let eventFd: EventFd

    public init() throws {
        eventFd = try EventFd()
    }

    /// Records why the device cannot go on (the first reason is kept) and wakes the transport.
    public func report(_ error: any Error, in context: String) {
        let isFirst = first.withLock { reason -> Bool in
            guard reason == nil else { return false }
            reason = "\(context): \(error)"
            return true
        }
        if isFirst { eventFd.signal() }
    }

    /// Whether a failure was reported since the last `clear`.
    public var hasFailed: Bool { first.withLock { $0 != nil } }

    /// The reported reason, if any.
    func reason() -> String? {
        eventFd.consume()
        return first.withLock { $0 }
    }

    func clear() { first.withLock { $0 = nil } }
}
