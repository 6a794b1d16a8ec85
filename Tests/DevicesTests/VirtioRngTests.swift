import Testing
@testable import Devices
@testable import VMM

/// virtio-rng (virtio 1.2, 5.4) driven as Linux's drivers/char/hw_random/virtio-rng.c
/// drives it: one queue, each request a device-writable buffer to fill.
@Suite struct VirtioRngTests {
    static let pattern: UInt8 = 0xA5
    static let guardSize = 16

    func driver(features: UInt64? = nil, queueSize: UInt16? = nil, eventLoop: Bool = true) throws -> (VirtioTestDriver, VirtioRng) {
        let rng = try VirtioRng(logger: quietLogger())
        let d = try VirtioTestDriver(device: rng, eventLoop: eventLoop)
        try d.initialize(features: features, queueSize: queueSize)
        return (d, rng)
    }

    /// Writable buffers of `lengths` bytes, filled with a pattern and each followed by
    /// guard bytes of the same pattern.
    func patterned(_ d: VirtioTestDriver, _ lengths: [Int], writable: Bool = true) -> [VirtioTestBuffer] {
        lengths.map { length in
            let address = d.allocate(length + Self.guardSize, align: 1)
            d.fill(address, length + Self.guardSize, with: Self.pattern)
            return VirtioTestBuffer(address: address, length: UInt32(length), writable: writable)
        }
    }

    /// Checks the first `filled` bytes across `buffers` were overwritten (none is left all
    /// pattern: buffers are at least 4 bytes long, so a false alarm is a 2^-32 chance)
    /// and every byte after them, guards included, was not.
    func expectFilled(_ d: VirtioTestDriver, _ buffers: [VirtioTestBuffer], upTo filled: Int,
                      sourceLocation: SourceLocation = #_sourceLocation) {
        var left = filled
        for (i, buffer) in buffers.enumerated() {
            let length = Int(buffer.length)
            let n = min(left, length)
            left -= n
            if n > 0 {
                let written = d.bytes(buffer.address, n)
                #expect(written.contains { $0 != Self.pattern }, "buffer \(i) was not filled", sourceLocation: sourceLocation)
            }
            // Compared by index, so that a failure prints a number rather than kilobytes.
            let rest = d.bytes(buffer.address + UInt64(n), length - n + Self.guardSize)
            let overwritten = rest.firstIndex { $0 != Self.pattern }.map { $0 + n }
            #expect(overwritten == nil, "buffer \(i) holds \(n) random bytes but was written at byte \(overwritten ?? 0)",
                    sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: [true, false])
    func fillsABufferAndInterrupts(eventLoop: Bool) throws {
        let (d, rng) = try driver(eventLoop: eventLoop)
        let buffers = patterned(d, [64])
        let head = try d.add(buffers)
        #expect(d.kick())
        #expect(d.getUsed().map { [$0.id, $0.len] } == [[UInt32(head), 64]])
        expectFilled(d, buffers, upTo: 64)
        #expect(d.interrupts() == 1)
        #expect(d.handleInterrupt() == VirtioInterrupt.usedBuffer)
        #expect(d.interruptStatus == 0)
        #expect(rng.bytesServed == 64)
    }

    @Test func fillsEveryBufferOfAChainSplitAnywhere() throws {
        let (d, rng) = try driver(queueSize: 8)
        let lengths = [4, 7, 1500, 64, 4099]
        let buffers = patterned(d, lengths)
        let head = try d.add(buffers, at: [6, 1, 7, 0, 3])
        #expect(head == 6)
        d.notify()
        let total = lengths.reduce(0, +)
        #expect(d.getUsed().map { [$0.id, $0.len] } == [[6, UInt32(total)]])
        expectFilled(d, buffers, upTo: total)
        #expect(rng.bytesServed == UInt64(total))
    }

    @Test func fillsEveryBufferBehindAnIndirectTable() throws {
        let (d, _) = try driver(queueSize: 8)
        let lengths = [4, 7, 1500, 64, 4099, 12, 300, 8]  // as many buffers as the queue has descriptors
        let buffers = patterned(d, lengths)
        let head = try d.addIndirect(buffers)
        d.notify()
        let total = lengths.reduce(0, +)
        #expect(d.getUsed().map { [$0.id, $0.len] } == [[UInt32(head), UInt32(total)]])
        expectFilled(d, buffers, upTo: total)
    }

    @Test func readableBuffersAreNeitherWrittenNorCounted() throws {
        let (d, _) = try driver()
        let readable = patterned(d, [32, 5], writable: false)
        let writable = patterned(d, [48])
        let head = try d.add(readable + writable)
        d.notify()
        #expect(d.getUsed().map { [$0.id, $0.len] } == [[UInt32(head), 48]])
        expectFilled(d, readable, upTo: 0)
        expectFilled(d, writable, upTo: 48)
    }

    @Test func aReadOnlyChainGetsLengthZero() throws {
        let (d, rng) = try driver()
        let direct = patterned(d, [16, 16], writable: false)
        let indirect = patterned(d, [16], writable: false)
        let first = try d.add(direct)
        let second = try d.addIndirect(indirect)
        let third = try d.add([.writable(d.allocate(8), 0)])  // a zero-length writable buffer
        d.notify()
        #expect(d.getUsed().map { [$0.id, $0.len] } == [[UInt32(first), 0], [UInt32(second), 0], [UInt32(third), 0]])
        expectFilled(d, direct + indirect, upTo: 0)
        #expect(rng.bytesServed == 0)
        #expect(rng.badRequests == 0)  // odd, but well-formed
        #expect(d.interrupts() == 1)
    }

    @Test func aRequestOverSixtyFourKiBGetsSixtyFourKiB() throws {
        let (d, rng) = try driver()
        let big = patterned(d, [100 << 10])
        let head = try d.add(big)
        d.notify()
        #expect(d.getUsed().map { [$0.id, $0.len] } == [[UInt32(head), 65536]])
        expectFilled(d, big, upTo: 65536)
        #expect(d.bytes(big[0].address + 65536 - 8, 8) != [UInt8](repeating: Self.pattern, count: 8))

        let split = patterned(d, [40000, 40000, 40000])
        let second = try d.add(split)
        d.notify()
        #expect(d.getUsed().map { [$0.id, $0.len] } == [[UInt32(second), 65536]])
        expectFilled(d, split, upTo: 65536)

        let indirect = patterned(d, [30000, 30000, 30000])
        let third = try d.addIndirect(indirect)
        d.notify()
        #expect(d.getUsed().map { [$0.id, $0.len] } == [[UInt32(third), 65536]])
        expectFilled(d, indirect, upTo: 65536)
        #expect(rng.bytesServed == 3 * 65536)
    }

    @Test func bytesAreRandom() throws {
        let (d, _) = try driver()
        let a = patterned(d, [256]), b = patterned(d, [256])
        try d.add(a)
        try d.add(b)
        d.notify()
        #expect(d.getUsed().count == 2)
        let x = d.bytes(a[0].address, 256), y = d.bytes(b[0].address, 256)
        #expect(x != y)
        #expect(Set(x).count > 64)  // 256 random bytes hold ~162 distinct values
    }

    @Test func aBatchIsServedInOrderWithOneInterrupt() throws {
        let (d, _) = try driver(queueSize: 16)
        var expected: [[UInt32]] = []
        for i in 1...12 {
            let head = try d.add(patterned(d, [4 * i]))
            expected.append([UInt32(head), UInt32(4 * i)])
        }
        #expect(d.kick())
        #expect(d.getUsed().map { [$0.id, $0.len] } == expected)
        #expect(d.interrupts() == 1)
    }

    // MARK: Interrupt suppression

    @Test(arguments: [true, false])
    func noInterruptFlagSuppressesInterrupts(eventLoop: Bool) throws {
        let features = VirtioFeature.version1 | VirtioFeature.ringIndirectDescriptors  // no EVENT_IDX
        let (d, _) = try driver(features: features, eventLoop: eventLoop)
        _ = d.interrupts()
        d.setAvailFlags(virtqAvailNoInterrupt)  // virtqueue_disable_cb()
        for _ in 0..<3 {
            try d.add(patterned(d, [16]))
            d.notify()
        }
        #expect(d.usedIdx() == 3)  // served...
        #expect(d.interrupts() == 0)  // ...silently
        #expect(d.interruptStatus == 0)
        #expect(d.getUsed().count == 3)

        d.setAvailFlags(0)  // virtqueue_enable_cb()
        try d.add(patterned(d, [16]))
        d.notify()
        #expect(d.interrupts() == 1)
        #expect(d.handleInterrupt() == VirtioInterrupt.usedBuffer)
        #expect(d.getUsed().count == 1)
    }

    @Test func withoutEventIndexTheDeviceLeavesAvailEventAlone() throws {
        let features = VirtioFeature.version1 | VirtioFeature.ringIndirectDescriptors
        let (d, _) = try driver(features: features, queueSize: 8)
        try d.memory.store(UInt16(0xBEEF), at: d.queue(0).availEventAddress)
        d.setUsedEvent(0x1234)  // meaningless without EVENT_IDX: every used buffer interrupts
        for _ in 0..<3 {
            try d.add(patterned(d, [16]))
            #expect(d.kick())  // VRING_USED_F_NO_NOTIFY is never set
            #expect(d.interrupts() == 1)
            _ = d.getUsed()
        }
        #expect(d.availEvent() == 0xBEEF)
    }

    @Test func eventIndexSuppressesInterruptsUntilUsedEventIsPassed() throws {
        let (d, _) = try driver(queueSize: 16)
        #expect(d.eventIndex)
        _ = d.interrupts()
        func request() throws { try d.add(patterned(d, [16])) }
        // used_event starts at 0: the first used buffer interrupts.
        try request()
        #expect(d.kick())
        #expect(d.usedIdx() == 1)
        #expect(d.interrupts() == 1)
        _ = d.getUsed()  // Linux moves used_event to last_used_idx (1): "interrupt at the next"
        try request()
        #expect(d.kick())
        #expect(d.interrupts() == 1)
        _ = d.getUsed()
        // virtqueue_enable_cb_delayed(): no interrupt until used idx passes 5.
        d.setUsedEvent(5)
        for used in UInt16(3)...6 {
            try request()
            d.kick()
            #expect(d.usedIdx() == used)
            #expect(d.interrupts() == (used == 6 ? 1 : 0), "used idx \(used)")
        }
        _ = d.getUsed()
        // A batch that crosses used_event interrupts once...
        d.setUsedEvent(7)
        for _ in 0..<3 { try request() }
        d.kick()
        #expect(d.usedIdx() == 9)
        #expect(d.interrupts() == 1)
        _ = d.getUsed()
        // ...and one that stops short of it, never.
        d.setUsedEvent(20)
        for _ in 0..<3 { try request() }
        d.kick()
        #expect(d.usedIdx() == 12)
        #expect(d.interrupts() == 0)
        #expect(d.interruptStatus == VirtioInterrupt.usedBuffer)  // from the earlier ones, never acknowledged
    }

    @Test func eventIndexIgnoresTheNoInterruptFlag() throws {
        let (d, _) = try driver(queueSize: 8)
        _ = d.interrupts()
        d.setAvailFlags(virtqAvailNoInterrupt)
        d.setUsedEvent(0)
        try d.add(patterned(d, [16]))
        d.kick()
        #expect(d.usedIdx() == 1)
        #expect(d.interrupts() == 1)  // virtio 1.2, 2.7.10: the device MUST ignore the flag
    }

    @Test func eventIndexAvailEventFollowsWhatTheDeviceConsumed() throws {
        let (d, _) = try driver(queueSize: 8)
        #expect(d.availEvent() == 0)
        for round in UInt16(1)...10 {
            try d.add(patterned(d, [8]))
            #expect(d.kick(), "round \(round): the device asked to hear about every new buffer")
            #expect(d.availEvent() == round)
            _ = d.getUsed()
        }
        // Two buffers added in one go, one kick: need_event(avail_event, new, old).
        try d.add(patterned(d, [8]))
        try d.add(patterned(d, [8]))
        #expect(d.kick())
        #expect(d.availEvent() == 12)
        #expect(d.getUsed().count == 2)
        // If avail_event were behind what the driver published, the driver would not kick.
        try d.memory.store(UInt16(5), at: d.queue(0).availEventAddress)
        try d.add(patterned(d, [8]))
        #expect(!d.kick())
        #expect(d.usedIdx() == 12)
    }
}
