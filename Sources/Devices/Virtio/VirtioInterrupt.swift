import Synchronization
import VMM

/// The device-to-driver interrupt of one virtio-mmio device: the InterruptStatus bits
/// and the irqfd that injects the (edge-triggered) interrupt without a VMM exit.
public final class VirtioInterrupt: Sendable {
    public static let usedBuffer: UInt32 = 1
    public static let configChange: UInt32 = 2

    private let bits = Atomic<UInt32>(0)
    public let eventFd: EventFd

    public init(eventFd: EventFd) {
        self.eventFd = eventFd
    }

    public var status: UInt32 { bits.load(ordering: .acquiring) }

    public func acknowledge(_ mask: UInt32) {
        bits.bitwiseAnd(~mask, ordering: .acquiringAndReleasing)
    }

    public func clear() {
        bits.store(0, ordering: .releasing)
    }

    public func signal(_ reason: UInt32) {
        bits.bitwiseOr(reason, ordering: .acquiringAndReleasing)
        eventFd.signal()
    }

    /// Signals a used buffer if the driver asked for it on `queue`.
    public func signalUsed(_ queue: VirtQueue, _ memory: GuestMemory) {
        if queue.needsInterrupt(memory) { signal(Self.usedBuffer) }
    }
}
