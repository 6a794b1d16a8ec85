import CKVM
import VMM

/// A queue-level failure: the rings themselves are unusable, not just one request.
public enum VirtQueueError: Error, Equatable, CustomStringConvertible {
    case availableIndexRunaway(available: UInt16, consumed: UInt16)

    public var description: String {
        switch self {
        case .availableIndexRunaway(let available, let consumed):
            return "available index \(available) is more than a queue ahead of \(consumed)"
        }
    }
}

/// A split virtqueue (virtio 1.2, 2.7): the driver's descriptor table and available ring,
/// the device's used ring. The transport writes the configuration; once the device is
/// activated only the device's worker (the event loop) touches the rings.
public final class VirtQueue: @unchecked Sendable {
    public let maxSize: UInt16
    public var size: UInt16
    public var ready = false
    public var descriptorTable: UInt64 = 0
    public var availableRing: UInt64 = 0
    public var usedRing: UInt64 = 0

    /// Negotiated ring features, set at activation.
    public private(set) var eventIndex = false
    public private(set) var indirectDescriptors = false
    public private(set) var nextAvailable: UInt16 = 0
    public private(set) var nextUsed: UInt16 = 0
    /// `nextUsed` when the driver was last notified (event-index suppression).
    private var lastSignalledUsed: UInt16 = 0

    public init(maxSize: UInt16) {
        self.maxSize = maxSize
        self.size = maxSize
    }

    /// Forgets everything the driver configured (device reset).
    public func reset() {
        size = maxSize
        ready = false
        descriptorTable = 0
        availableRing = 0
        usedRing = 0
        eventIndex = false
        indirectDescriptors = false
        nextAvailable = 0
        nextUsed = 0
        lastSignalledUsed = 0
    }

    /// Whether the driver's configuration can be used: a power-of-two size within the
    /// maximum and all three areas aligned and inside guest memory.
    public func isValid(memory: GuestMemory) -> Bool {
        guard ready, size > 0, size <= maxSize, size & (size - 1) == 0 else { return false }
        let n = Int(size)
        return descriptorTable % 16 == 0 && memory.contains(descriptorTable, length: 16 * n)
            && availableRing % 2 == 0 && memory.contains(availableRing, length: 6 + 2 * n)
            && usedRing % 4 == 0 && memory.contains(usedRing, length: 6 + 8 * n)
    }

    public func activate(features: UInt64) {
        eventIndex = features & VirtioFeature.ringEventIndex != 0
        indirectDescriptors = features & VirtioFeature.ringIndirectDescriptors != 0
    }

    /// The next chain the driver made available, nil when there is none. A malformed
    /// chain is returned to the driver at once (used length 0) and thrown as a
    /// `DescriptorChainError`; any other error means the rings are unusable.
    public func pop(_ memory: GuestMemory) throws -> DescriptorChain? {
        let availableIndex = try memory.load(UInt16.self, at: availableRing + 2)
        guard availableIndex != nextAvailable else { return nil }
        ckvm_fence_acquire()  // read the ring entry only after seeing the index move
        // The driver may not run ahead of us by more than the queue size.
        guard availableIndex &- nextAvailable <= size else {
            throw VirtQueueError.availableIndexRunaway(available: availableIndex, consumed: nextAvailable)
        }
        let slot = UInt64(nextAvailable % size)
        let head = try memory.load(UInt16.self, at: availableRing + 4 + 2 * slot)
        nextAvailable &+= 1
        if eventIndex {
            // avail_event: ask to be notified when the driver adds past what we consumed.
            // The full fence pairs with the driver's (write avail idx; mb; read avail_event):
            // without it our next read of the index could pass this store, and both sides
            // could miss each other's update (no kick, device idle, guest hung).
            try memory.store(nextAvailable, at: usedRing + 4 + 8 * UInt64(size))
            ckvm_fence_full()
        }
        do {
            return try DescriptorChain(memory: memory, table: descriptorTable, size: size, head: head,
                                       indirectAllowed: indirectDescriptors)
        } catch {
            if head < size { try addUsed(memory, head: head, length: 0) }
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
        guard let index = try? memory.load(UInt16.self, at: availableRing + 2) else { return false }
        return index != nextAvailable
    }

    /// Gives back the last `count` chains taken with `pop` and not yet used (a frame that
    /// did not fit waits for more buffers without losing the ones it had).
    public func unpop(_ count: Int = 1) {
        nextAvailable &-= UInt16(truncatingIfNeeded: count)
    }

    /// Puts a finished chain on the used ring with the number of bytes written to it.
    public func addUsed(_ memory: GuestMemory, head: UInt16, length: UInt32) throws {
        let slot = UInt64(nextUsed % size)
        try memory.store(UInt32(head), at: usedRing + 4 + 8 * slot)
        try memory.store(length, at: usedRing + 4 + 8 * slot + 4)
        nextUsed &+= 1
        ckvm_fence_release()  // the entry is visible before the index that publishes it
        try memory.store(nextUsed, at: usedRing + 2)
    }

    /// Whether the driver wants an interrupt for the entries used since the last one.
    public func needsInterrupt(_ memory: GuestMemory) -> Bool {
        ckvm_fence_full()  // our used-index store is visible before we read the driver's wish
        defer { lastSignalledUsed = nextUsed }
        if eventIndex {
            guard let usedEvent = try? memory.load(UInt16.self, at: availableRing + 4 + 2 * UInt64(size)) else {
                return true
            }
            // vring_need_event: did used_event fall within (old, new]?
            return nextUsed &- usedEvent &- 1 < nextUsed &- lastSignalledUsed
        }
        let flags = (try? memory.load(UInt16.self, at: availableRing)) ?? 0
        return flags & 1 == 0  // VIRTQ_AVAIL_F_NO_INTERRUPT
    }
}
