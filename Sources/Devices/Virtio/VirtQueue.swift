import CLinux
import VMM

/// A queue-level failure: the rings themselves are unusable, not just one request.
public enum VirtQueueError: Error, Equatable, CustomStringConvertible {
    case availableIndexRunaway(available: UInt16, consumed: UInt16)
    /// Used-ring access on a queue that was not activated (or was deactivated).
    case notActive

    public var description: String {
        switch self {
        case .notActive:
            return "the queue is not active"
        case .availableIndexRunaway(let available, let consumed):
            return "available index \(available) is more than a queue ahead of \(consumed)"
        }
    }
}

/// A split virtqueue (virtio 1.2, 2.7): the driver's descriptor table and available ring,
/// the device's used ring. The transport writes the registers; at DRIVER_OK a queue that
/// is ready and valid is activated, and from then on only the device's worker (the event
/// loop) touches its ring, through the geometry captured then. A queue that was not
/// activated does nothing: devices may reach any of their queues from a backend event
/// (a tap frame, a vsock RST), whatever the driver set up.
public final class VirtQueue: @unchecked Sendable {  // registers and ring state touched only under the owning transport's lock
    public let maxSize: UInt16
    // The registers, as the driver last wrote them.
    public var size: UInt16
    public var ready = false
    public var descriptorTable: UInt64 = 0
    public var availableRing: UInt64 = 0
    public var usedRing: UInt64 = 0

    /// The ring as activated: every area checked to lie inside guest memory, so that no
    /// offset computed below can leave it (or overflow).
    struct Ring {
        let size: UInt16
        let table: UInt64
        let avail: UInt64
        let used: UInt64
        let eventIndex: Bool
        let indirect: Bool
    }
    private var ring: Ring?

    public var isActive: Bool { ring != nil }
    public var eventIndex: Bool { ring?.eventIndex ?? false }
    public var indirectDescriptors: Bool { ring?.indirect ?? false }
    public private(set) var nextAvailable: UInt16 = 0
    public private(set) var nextUsed: UInt16 = 0
    /// `nextUsed` when the driver was last notified (event-index suppression).
    private var lastSignalledUsed: UInt16 = 0

    /// Chains taken in the current pass (see `beginPass`), and the doorbell that resumes
    /// the work when a pass runs out of budget.
    private var takenThisPass = 0
    /// The doorbell (KVM's ioeventfd on QueueNotify); a vhost-user backend reads it itself.
    public let notifier: EventFd?

    /// `notifier`: the queue's doorbell; a pass that stops at its budget rings it, so the
    /// device comes back to the queue after the event loop served everything else.
    public init(maxSize: UInt16, notifier: EventFd? = nil) {
        self.maxSize = maxSize
        self.size = maxSize
        self.notifier = notifier
    }

    /// Forgets everything the driver configured (device reset).
    public func reset() {
        size = maxSize
        ready = false
        descriptorTable = 0
        availableRing = 0
        usedRing = 0
        deactivate()
    }

    /// Stops using the ring but keeps the registers (the device failed; the driver resets).
    public func deactivate() {
        ring = nil
        nextAvailable = 0
        nextUsed = 0
        lastSignalledUsed = 0
        takenThisPass = 0
    }

    /// Whether the driver's configuration can be used: a power-of-two size within the
    /// maximum and all three areas aligned and inside guest memory.
    public func isValid(memory: GuestMemory) -> Bool {
        guard ready, size > 0, size <= maxSize, size & (size &- 1) == 0 else { return false }
        let n = Int(size)
        return descriptorTable % 16 == 0 && memory.contains(descriptorTable, length: 16 * n)
            && availableRing % 2 == 0 && memory.contains(availableRing, length: 6 + 2 * n)
            && usedRing % 4 == 0 && memory.contains(usedRing, length: 6 + 8 * n)
    }

    /// Activates the queue if it is ready and valid; returns whether it is now active.
    @discardableResult
    public func activate(features: UInt64, memory: GuestMemory) -> Bool {
        deactivate()
        guard isValid(memory: memory) else { return false }
        ring = Ring(size: size, table: descriptorTable, avail: availableRing, used: usedRing,
                    eventIndex: features & VirtioFeature.ringEventIndex != 0,
                    indirect: features & VirtioFeature.ringIndirectDescriptors != 0)
        return true
    }

    /// Takes over a ring that another party served until now (a vhost-user backend that
    /// went away): carries on from the indices in guest memory, the driver's available
    /// index counting as consumed (what the backend took with it is lost).
    public func adoptRing(_ memory: GuestMemory) throws {
        guard let ring else { throw VirtQueueError.notActive }
        nextAvailable = try memory.load(UInt16.self, at: ring.avail &+ 2)
        nextUsed = try memory.load(UInt16.self, at: ring.used &+ 2)
        lastSignalledUsed = nextUsed
        takenThisPass = 0
    }

    /// Starts a pass over the queue (a notification): the device may take up to one
    /// ring's worth of chains before it yields the event loop to other work.
    public func beginPass() { takenThisPass = 0 }

    /// The next chain the driver made available, nil when there is none (or the queue is
    /// not active, or this pass used its budget). A malformed chain is returned to the
    /// driver at once (used length 0) and thrown as a `DescriptorChainError`; any other
    /// error means the rings are unusable.
    public func pop(_ memory: GuestMemory) throws -> DescriptorChain? {
        guard let ring else { return nil }
        let availableIndex = try memory.load(UInt16.self, at: ring.avail &+ 2)
        guard availableIndex != nextAvailable else { return nil }
        clinux_fence_acquire()  // read the ring entry only after seeing the index move
        // The driver may not run ahead of us by more than the queue size.
        guard availableIndex &- nextAvailable <= ring.size else {
            throw VirtQueueError.availableIndexRunaway(available: availableIndex, consumed: nextAvailable)
        }
        guard takenThisPass < Int(ring.size) else {
            // A driver refilling as fast as we drain cannot hold the loop: resume later.
            notifier?.signal()
            return nil
        }
        takenThisPass += 1
        let slot = UInt64(nextAvailable % ring.size)
        let head = try memory.load(UInt16.self, at: ring.avail &+ 4 &+ 2 &* slot)
        nextAvailable &+= 1
        if ring.eventIndex {
            // avail_event: ask to be notified when the driver adds past what we consumed.
            // The full fence pairs with the driver's (write avail idx; mb; read avail_event):
            // without it our next read of the index could pass this store, and both sides
            // could miss each other's update (no kick, device idle, guest hung).
            try memory.store(nextAvailable, at: ring.used &+ 4 &+ 8 &* UInt64(ring.size))
            clinux_fence_full()
        }
        do {
            return try DescriptorChain(memory: memory, table: ring.table, size: ring.size, head: head,
                                       indirectAllowed: ring.indirect)
        } catch {
            if head < ring.size { try addUsed(memory, head: head, length: 0) }
            throw error
        }
    }

    /// The next well-formed chain, nil when the ring is empty. Malformed chains on the way
    /// are already returned to the driver by `pop`; each is reported to `badChain` (for
    /// the device's log and counters) and skipped. Other errors mean the ring is broken.
    public func nextChain(_ memory: GuestMemory, badChain: (DescriptorChainError) -> Void) throws -> DescriptorChain? {
        while true {
            do {
                return try pop(memory)
            } catch let error as DescriptorChainError {
                badChain(error)
            }
        }
    }

    /// Whether the driver has made a chain available that we have not taken yet.
    public func hasAvailable(_ memory: GuestMemory) -> Bool {
        guard let ring, let index = try? memory.load(UInt16.self, at: ring.avail &+ 2) else { return false }
        return index != nextAvailable
    }

    /// Gives back the last `count` chains taken with `pop` and not yet used (a frame that
    /// did not fit waits for more buffers without losing the ones it had).
    public func unpop(_ count: Int = 1) {
        guard ring != nil, count > 0 else { return }
        let count = min(count, takenThisPass)
        nextAvailable &-= UInt16(truncatingIfNeeded: count)
        takenThisPass -= count
    }

    /// Puts a finished chain on the used ring with the number of bytes written to it.
    public func addUsed(_ memory: GuestMemory, head: UInt16, length: UInt32) throws {
        guard let ring else { throw VirtQueueError.notActive }
        let slot = UInt64(nextUsed % ring.size)
        let entry = ring.used &+ 4 &+ 8 &* slot
        try memory.store(UInt32(head), at: entry)
        try memory.store(length, at: entry &+ 4)
        nextUsed &+= 1
        clinux_fence_release()  // the entry is visible before the index that publishes it
        try memory.store(nextUsed, at: ring.used &+ 2)
    }

    /// Whether the driver wants an interrupt for the entries used since the last one.
    public func needsInterrupt(_ memory: GuestMemory) -> Bool {
        guard let ring else { return false }
        clinux_fence_full()  // our used-index store is visible before we read the driver's wish
        defer { lastSignalledUsed = nextUsed }
        if ring.eventIndex {
            guard let usedEvent = try? memory.load(UInt16.self, at: ring.avail &+ 4 &+ 2 &* UInt64(ring.size)) else {
                return true
            }
            // vring_need_event: did used_event fall within (old, new]?
            return nextUsed &- usedEvent &- 1 < nextUsed &- lastSignalledUsed
        }
        let flags = (try? memory.load(UInt16.self, at: ring.avail)) ?? 0
        return flags & 1 == 0  // VIRTQ_AVAIL_F_NO_INTERRUPT
    }
}
