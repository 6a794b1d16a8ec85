import Testing
@testable import Devices
@testable import VMM

/// Writes one split-ring descriptor (virtio 1.2, 2.7.5) into guest memory.
private func storeDescriptor(_ memory: GuestMemory, table: UInt64, _ index: UInt16, address: UInt64, length: UInt32,
                             flags: UInt16 = 0, next: UInt16 = 0) throws {
    let at = table + 16 * UInt64(index)
    try memory.store(address, at: at)
    try memory.store(length, at: at + 8)
    try memory.store(flags, at: at + 12)
    try memory.store(next, at: at + 14)
}

/// DescriptorChain parsing on its own: a descriptor table of 8 entries at 0x1000 in
/// 16 MiB of guest RAM, and indirect tables at 0x2000.
@Suite struct DescriptorChainTests {
    let memory: GuestMemory
    let table: UInt64 = 0x1000
    let indirectTable: UInt64 = 0x2000
    let size: UInt16 = 8
    let end: UInt64 = 16 << 20
    let W = VirtqDesc.write
    let N = VirtqDesc.next
    let I = VirtqDesc.indirect

    init() throws {
        memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 16 << 20))
    }

    func desc(_ index: UInt16, _ address: UInt64, _ length: UInt32, _ flags: UInt16 = 0, next: UInt16 = 0) throws {
        try storeDescriptor(memory, table: table, index, address: address, length: length, flags: flags, next: next)
    }

    func indirect(_ index: UInt16, _ address: UInt64, _ length: UInt32, _ flags: UInt16 = 0, next: UInt16 = 0) throws {
        try storeDescriptor(memory, table: indirectTable, index, address: address, length: length, flags: flags, next: next)
    }

    func parse(head: UInt16 = 0, indirectAllowed: Bool = true) throws -> DescriptorChain {
        try DescriptorChain(memory: memory, table: table, size: size, head: head, indirectAllowed: indirectAllowed)
    }

    func expectError(_ expected: DescriptorChainError, head: UInt16 = 0, indirectAllowed: Bool = true,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: expected, sourceLocation: sourceLocation) { try parse(head: head, indirectAllowed: indirectAllowed) }
    }

    // MARK: Well-formed chains

    @Test func followsNextLinksAnywhereInTheTable() throws {
        // head 5 -> 2 -> 7 -> 0: two readable buffers, then two writable ones.
        try desc(5, 0x10000, 16, N, next: 2)
        try desc(2, 0x10100, 3, N, next: 7)
        try desc(7, 0x20000, 512, W | N, next: 0)
        try desc(0, 0x30001, 1, W)
        let chain = try parse(head: 5)
        #expect(chain.head == 5)
        #expect(chain.readable == [GuestBuffer(address: 0x10000, length: 16), GuestBuffer(address: 0x10100, length: 3)])
        #expect(chain.writable == [GuestBuffer(address: 0x20000, length: 512), GuestBuffer(address: 0x30001, length: 1)])
        #expect(chain.readableLength == 19)
        #expect(chain.writableLength == 513)
    }

    @Test func aSingleDescriptorIgnoresItsNextField() throws {
        try desc(3, 0x10000, 8, W, next: 0xFFFF)
        let chain = try parse(head: 3)
        #expect(chain.writable == [GuestBuffer(address: 0x10000, length: 8)])
        #expect(chain.readable.isEmpty)
    }

    @Test func aChainAsLongAsTheTableIsAccepted() throws {
        for i in 0..<size {
            try desc(i, 0x10000 + 0x100 * UInt64(i), 0x10, W | (i == size - 1 ? 0 : N), next: i + 1)
        }
        #expect(try parse().writable.count == 8)
        #expect(try parse(head: 3).writable.count == 5)
    }

    @Test func zeroLengthDescriptorsAreSkippedWhateverTheirAddress() throws {
        try desc(0, UInt64.max, 0, N, next: 1)
        try desc(1, 0x10000, 4, N, next: 2)
        try desc(2, 0xFFFF_FFFF_0000_0000, 0, W | N, next: 3)
        try desc(3, 0x20000, 4, W)
        let chain = try parse()
        #expect(chain.readable == [GuestBuffer(address: 0x10000, length: 4)])
        #expect(chain.writable == [GuestBuffer(address: 0x20000, length: 4)])
    }

    @Test func aBufferEndingExactlyAtTheEndOfRamIsAccepted() throws {
        try desc(0, end - 16, 16, W)
        #expect(try parse().writable == [GuestBuffer(address: end - 16, length: 16)])
    }

    @Test func parsesAnIndirectTable() throws {
        try desc(4, indirectTable, 48, I)
        try indirect(0, 0x10000, 12, N, next: 1)
        try indirect(1, 0x11000, 100, W | N, next: 2)
        try indirect(2, 0x12000, 200, W)
        let chain = try parse(head: 4)
        #expect(chain.head == 4)
        #expect(chain.readable == [GuestBuffer(address: 0x10000, length: 12)])
        #expect(chain.writable == [GuestBuffer(address: 0x11000, length: 100), GuestBuffer(address: 0x12000, length: 200)])
    }

    @Test func indirectTableAsLongAsTheQueueLinksInAnyOrder() throws {
        // 8 descriptors behind a queue of 8, linked 0 -> 7 -> 6 -> ... -> 1.
        func address(_ i: UInt16) -> UInt64 { 0x10000 + 0x10 * UInt64(i) }
        try desc(0, indirectTable, 8 * 16, I)
        try indirect(0, address(0), 0x10, W | N, next: 7)
        for i in UInt16(2)..<8 { try indirect(i, address(i), 0x10, W | N, next: i - 1) }
        try indirect(1, address(1), 0x10, W)
        let chain = try parse()
        #expect(chain.writable.map(\.address) == [address(0)] + (1...7).reversed().map { address(UInt16($0)) })
        #expect(chain.writableLength == 8 * 0x10)
    }

    @Test func indirectTableLongerThanTheQueueIsRefusedUnwalked() throws {
        // virtio 1.2, 2.7.5.3.1: no chain longer than the queue. The table is never read:
        // its entries are garbage that would fail differently if walked.
        try desc(0, indirectTable, 9 * 16, I)
        expectError(.indirectTableTooLong(entries: 9, queueSize: 8))
        // 64 MiB claimed (a hostile guest's stall): refused before it is touched.
        try desc(0, 0x10000, 64 << 20, I)
        expectError(.indirectTableTooLong(entries: (64 << 20) / 16, queueSize: 8))
    }

    @Test func directDescriptorsThenAnIndirectOne() throws {
        // virtio 1.2, 2.7.5.3.2: zero or more chained descriptors followed by an indirect one.
        try desc(0, 0x10000, 8, N, next: 6)
        try desc(6, indirectTable, 32, I)
        try indirect(0, 0x11000, 8, N, next: 1)
        try indirect(1, 0x12000, 64, W)
        let chain = try parse()
        #expect(chain.readable.map(\.address) == [0x10000, 0x11000])
        #expect(chain.writable.map(\.address) == [0x12000])
    }

    @Test func theWriteFlagOfAnIndirectDescriptorIsIgnored() throws {
        try desc(0, indirectTable, 16, I | W)
        try indirect(0, 0x10000, 8)
        let chain = try parse()
        #expect(chain.readable == [GuestBuffer(address: 0x10000, length: 8)])
        #expect(chain.writable.isEmpty)
    }

    // MARK: Malformed chains

    @Test func headOutsideTheQueue() {
        expectError(.headOutOfRange(8), head: 8)
        expectError(.headOutOfRange(0xFFFF), head: 0xFFFF)
    }

    @Test func nextOutsideTheTable() throws {
        try desc(0, 0x10000, 8, N, next: 8)
        expectError(.indexOutOfRange(8))
        try desc(0, 0x10000, 8, N, next: 0xFFFF)
        expectError(.indexOutOfRange(0xFFFF))
    }

    @Test func loops() throws {
        try desc(0, 0x10000, 8, N, next: 0)  // onto itself
        expectError(.tooLong)
        for i in 0..<size { try desc(i, 0x10000, 8, N, next: (i + 1) % size) }  // round the whole table
        expectError(.tooLong)
        expectError(.tooLong, head: 5)
        try desc(0, 0x10000, 0, N, next: 0)  // zero-length descriptors still count
        expectError(.tooLong)
    }

    @Test func indirectWithoutTheFeature() throws {
        try desc(0, indirectTable, 16, I)
        try indirect(0, 0x10000, 8, W)
        expectError(.indirectNotNegotiated, indirectAllowed: false)
        #expect(try parse(indirectAllowed: true).writable.count == 1)
    }

    @Test func indirectWithNext() throws {
        try desc(0, indirectTable, 16, I | N, next: 1)
        try desc(1, 0x10000, 8, W)
        try indirect(0, 0x11000, 8, W)
        expectError(.nestedIndirect)
    }

    @Test func nestedIndirect() throws {
        try desc(0, indirectTable, 32, I)
        try indirect(0, 0x10000, 8, N, next: 1)
        try indirect(1, indirectTable + 0x100, 16, I)
        try storeDescriptor(memory, table: indirectTable + 0x100, 0, address: 0x11000, length: 8, flags: W)
        expectError(.nestedIndirect)
    }

    @Test(arguments: [UInt32(0), 1, 8, 15, 24, 17, 0xFFFF_FFF8])
    func indirectTableLengthNotAWholeNumberOfDescriptors(length: UInt32) throws {
        try desc(0, indirectTable, length, I)
        expectError(.badIndirectTable(length: length))
    }

    @Test func indirectTableOutsideMemory() throws {
        try desc(0, end - 16, 32, I)
        expectError(.outOfGuestMemory(address: end - 16, length: 32))
        try desc(0, UInt64.max - 15, 32, I)  // address + length wraps around
        expectError(.outOfGuestMemory(address: UInt64.max - 15, length: 32))
        try desc(0, 0xFFFF_FFF0, 8 * 16, I)  // as long as the queue, but not in memory
        expectError(.outOfGuestMemory(address: 0xFFFF_FFF0, length: 8 * 16))
    }

    @Test func indirectTableLoopsAndBadIndices() throws {
        try desc(0, indirectTable, 48, I)
        try indirect(0, 0x10000, 8, N, next: 1)
        try indirect(1, 0x10000, 8, N, next: 2)
        try indirect(2, 0x10000, 8, N, next: 0)
        expectError(.tooLong)
        try indirect(2, 0x10000, 8, N, next: 3)  // one past the 3-entry table
        expectError(.indexOutOfRange(3))
    }

    static let outsideBuffers: [(UInt64, UInt32)] = [
        ((16 << 20) - 8, 16),  // crosses the end of RAM
        (16 << 20, 1),  // just past it
        (UInt64.max, 1),
        (UInt64.max - 7, 16),  // address + length wraps to a small address
        (0xFFFF_FFFF_FFFF_0000, 0x1_0000),  // wraps to exactly 0
        (0xC000_0000, 4),  // the MMIO gap
        (0x1_0000_0000, 4096),  // above 4 GiB, no RAM there
        (0, 0xFFFF_FFFF),
    ]

    @Test(arguments: outsideBuffers)
    func bufferOutsideMemory(address: UInt64, length: UInt32) throws {
        try desc(0, address, length, W)
        expectError(.outOfGuestMemory(address: address, length: length))
        try desc(0, 0x10000, 8, N, next: 1)
        try desc(1, address, length)
        expectError(.outOfGuestMemory(address: address, length: length))
        try desc(0, indirectTable, 16, I)
        try indirect(0, address, length, W)
        expectError(.outOfGuestMemory(address: address, length: length))
    }

    @Test func bufferAcrossAHoleBetweenRegions() throws {
        let memory = try GuestMemory(ranges: [(0, 1 << 20), (2 << 20, 1 << 20)])
        try storeDescriptor(memory, table: 0x1000, 0, address: (1 << 20) - 8, length: 16, flags: VirtqDesc.write)
        #expect(throws: DescriptorChainError.outOfGuestMemory(address: (1 << 20) - 8, length: 16)) {
            try DescriptorChain(memory: memory, table: 0x1000, size: 4, head: 0, indirectAllowed: false)
        }
        try storeDescriptor(memory, table: 0x1000, 0, address: 2 << 20, length: 16, flags: VirtqDesc.write)
        let chain = try DescriptorChain(memory: memory, table: 0x1000, size: 4, head: 0, indirectAllowed: false)
        #expect(chain.writable == [GuestBuffer(address: 2 << 20, length: 16)])
    }

    @Test func readableAfterWritable() throws {
        try desc(0, 0x10000, 8, W | N, next: 1)
        try desc(1, 0x11000, 8)
        expectError(.readableAfterWritable)
        // Also across the step into an indirect table.
        try desc(0, 0x10000, 8, W | N, next: 1)
        try desc(1, indirectTable, 16, I)
        try indirect(0, 0x11000, 8)
        expectError(.readableAfterWritable)
        // And inside one.
        try desc(0, indirectTable, 32, I)
        try indirect(0, 0x11000, 8, W | N, next: 1)
        try indirect(1, 0x12000, 8)
        expectError(.readableAfterWritable)
    }

    // MARK: Reading and writing a chain as a stream

    @Test func readerStreamsAcrossBuffers() throws {
        // A 4-byte and an 8-byte little-endian value split over buffers of 3, 5 and 8 bytes.
        try desc(0, 0x10000, 3, N, next: 1)
        try desc(1, 0x10010, 5, N, next: 2)
        try desc(2, 0x10020, 8)
        try memory.write([0x01, 0x02, 0x03], at: 0x10000)
        try memory.write([0x04, 0x11, 0x22, 0x33, 0x44], at: 0x10010)
        try memory.write([0x55, 0x66, 0x77, 0x88, 0xAA, 0xBB, 0xCC, 0xDD], at: 0x10020)
        var reader = try parse().reader(memory)
        #expect(reader.remaining == 16)
        #expect(reader.read(UInt32.self) == 0x0403_0201)
        #expect(reader.read(UInt64.self) == 0x8877_6655_4433_2211)
        #expect(reader.remaining == 4)
        #expect(reader.read(UInt64.self) == nil)  // only 4 bytes were left
        #expect(reader.remaining == 0)
        #expect(reader.read(UInt8.self) == nil)
    }

    @Test func writerStreamsAcrossBuffersAndStopsAtTheirEnd() throws {
        try desc(0, 0x10000, 4, N, next: 1)  // a readable header the writer never sees
        try desc(1, 0x20000, 7, W | N, next: 2)
        try desc(2, 0x20100, 13, W)
        try memory.write([UInt8](repeating: 0xEE, count: 0x200), at: 0x20000)
        var writer = try parse().writer(memory)
        #expect(writer.remaining == 20)
        #expect(writer.write(Array(UInt8(1)...UInt8(10))) == 10)
        #expect(writer.written == 10)
        #expect(writer.write(Array(UInt8(11)...UInt8(30))) == 10)  // 10 of 20 fit
        #expect(writer.written == 20)
        #expect(writer.remaining == 0)
        #expect(writer.write([0xFF]) == 0)
        #expect(try memory.read(at: 0x20000, length: 8) == [1, 2, 3, 4, 5, 6, 7, 0xEE])
        #expect(try memory.read(at: 0x20100, length: 14) == Array(UInt8(8)...UInt8(20)) + [0xEE])
        #expect(try memory.read(at: 0x10000, length: 4) == [0, 0, 0, 0])
    }
}

/// VirtQueue on its own, the device side of a split ring in guest memory.
@Suite struct VirtQueueTests {
    @Test func indicesWrapAt16Bits() throws {
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 1 << 20))
        let queue = VirtQueue(maxSize: 4)
        queue.size = 4
        queue.descriptorTable = 0x1000
        queue.availableRing = 0x2000
        queue.usedRing = 0x3000
        queue.ready = true
        #expect(queue.isValid(memory: memory))
        #expect(queue.activate(features: VirtioFeature.version1, memory: memory))
        for i in UInt16(0)..<4 {
            try storeDescriptor(memory, table: 0x1000, i, address: 0x10000, length: 8, flags: VirtqDesc.write)
        }
        var availIdx: UInt16 = 0
        var wrongHeads = 0
        for round in 0..<(65536 + 6) {
            let head = UInt16(round % 4)
            try memory.store(head, at: 0x2000 + 4 + 2 * UInt64(availIdx % 4))
            availIdx &+= 1
            try memory.store(availIdx, at: 0x2002)
            queue.beginPass()
            guard let chain = try queue.pop(memory), chain.head == head, try queue.pop(memory) == nil else {
                wrongHeads += 1
                continue
            }
            try queue.addUsed(memory, head: chain.head, length: UInt32(round & 0xFF))
        }
        #expect(wrongHeads == 0)
        #expect(queue.nextAvailable == 6)
        #expect(queue.nextUsed == 6)
        #expect(try memory.load(UInt16.self, at: 0x3002) == 6)
        // The last used element went to slot (65541 % 4) = 1 with round 65541's length.
        #expect(try memory.load(UInt32.self, at: 0x3000 + 4 + 8 * 1) == 1)
        #expect(try memory.load(UInt32.self, at: 0x3000 + 4 + 8 * 1 + 4) == UInt32(65541 & 0xFF))
    }

    @Test func availableIndexRunaway() throws {
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 1 << 20))
        let queue = VirtQueue(maxSize: 8)
        queue.descriptorTable = 0x1000
        queue.availableRing = 0x2000
        queue.usedRing = 0x3000
        queue.ready = true
        #expect(queue.activate(features: VirtioFeature.version1, memory: memory))
        try memory.store(UInt16(9), at: 0x2002)
        #expect(throws: VirtQueueError.availableIndexRunaway(available: 9, consumed: 0)) { try queue.pop(memory) }
        try memory.store(UInt16(0xFFFF), at: 0x2002)  // "behind" is as bad as far ahead
        #expect(throws: VirtQueueError.self) { try queue.pop(memory) }
        try memory.store(UInt16(8), at: 0x2002)  // a full ring is fine
        #expect(try queue.pop(memory)?.head == 0)
    }
}

/// Malformed requests sent to a real device (virtio-rng) through the transport: each is
/// answered with length 0 and the queue keeps working.
@Suite struct VirtioMalformedRequestTests {
    enum Malformed: String, CaseIterable, CustomTestStringConvertible {
        case nextOutOfRange, loop, selfLoop, indirectWithoutFeature, indirectWithNext, nestedIndirect
        case indirectLengthNotMultipleOf16, indirectLengthZero, indirectTableOutsideMemory, indirectTableLoop
        case bufferOutsideMemory, bufferAddressWraps, readableAfterWritable, readableAfterWritableInIndirect
        var testDescription: String { rawValue }

        /// Writes the bad chain with descriptors 5...7 of the driver's table; returns its
        /// head and the guest buffer it names (which must stay untouched).
        func build(_ d: VirtioTestDriver) -> (head: UInt16, buffer: UInt64) {
            let t = d.queue(0).desc
            let (W, N, I) = (VirtqDesc.write, VirtqDesc.next, VirtqDesc.indirect)
            let end = d.memory.totalSize
            let buffer = d.allocate(64)
            let table = d.allocate(64)
            func direct(_ i: UInt16, _ address: UInt64, _ length: UInt32, _ flags: UInt16, _ next: UInt16 = 0) {
                d.writeDescriptor(table: t, index: i, address: address, length: length, flags: flags, next: next)
            }
            func inTable(_ i: UInt16, _ address: UInt64, _ length: UInt32, _ flags: UInt16, _ next: UInt16 = 0) {
                d.writeDescriptor(table: table, index: i, address: address, length: length, flags: flags, next: next)
            }
            switch self {
            case .nextOutOfRange:
                direct(5, buffer, 64, W | N, 8)
            case .loop:
                direct(5, buffer, 32, W | N, 6)
                direct(6, buffer + 32, 32, W | N, 5)
            case .selfLoop:
                direct(7, buffer, 64, W | N, 7)
                return (7, buffer)
            case .indirectWithoutFeature:
                inTable(0, buffer, 64, W)
                direct(5, table, 16, I)
            case .indirectWithNext:
                inTable(0, buffer, 32, W)
                direct(5, table, 16, I | N, 6)
                direct(6, buffer + 32, 32, W)
            case .nestedIndirect:
                let inner = d.allocate(16)
                d.writeDescriptor(table: inner, index: 0, address: buffer, length: 64, flags: W, next: 0)
                inTable(0, inner, 16, I)
                direct(5, table, 16, I)
            case .indirectLengthNotMultipleOf16:
                inTable(0, buffer, 64, W)
                direct(5, table, 24, I)
            case .indirectLengthZero:
                direct(5, table, 0, I)
            case .indirectTableOutsideMemory:
                direct(5, end - 16, 32, I)
            case .indirectTableLoop:
                inTable(0, buffer, 32, W | N, 1)
                inTable(1, buffer + 32, 32, W | N, 0)
                direct(5, table, 32, I)
            case .bufferOutsideMemory:
                direct(5, buffer, 64, W | N, 6)
                direct(6, end - 8, 16, W)
            case .bufferAddressWraps:
                direct(5, buffer, 64, W | N, 6)
                direct(6, UInt64.max - 7, 16, W)
            case .readableAfterWritable:
                direct(5, buffer, 64, W | N, 6)
                direct(6, table, 8, 0)
            case .readableAfterWritableInIndirect:
                inTable(0, buffer, 64, W | N, 1)
                inTable(1, table + 32, 8, 0)
                direct(5, table, 32, I)
            }
            return (5, buffer)
        }
    }

    @Test(arguments: Malformed.allCases)
    func malformedChainIsAnsweredEmptyAndTheQueueCarriesOn(_ malformed: Malformed) throws {
        let rng = try VirtioRng(logger: quietLogger())
        let d = try VirtioTestDriver(device: rng)
        var features = rng.offeredFeatures
        if malformed == .indirectWithoutFeature { features &= ~VirtioFeature.ringIndirectDescriptors }
        try d.initialize(features: features, queueSize: 8)

        let (head, buffer) = malformed.build(d)
        d.publish(head: head)
        d.notify()
        #expect(d.status & VirtioStatus.deviceNeedsReset == 0)
        #expect(d.transport.isActive)
        #expect(d.getUsed().map { [$0.id, $0.len] } == [[UInt32(head), 0]])
        #expect(d.interrupts() == 1)
        #expect(d.handleInterrupt() == VirtioInterrupt.usedBuffer)
        #expect(d.bytes(buffer, 64) == [UInt8](repeating: 0, count: 64))
        #expect(rng.badRequests == 1)
        #expect(rng.bytesServed == 0)

        // The next good request on the same queue works.
        let good = d.allocate(32)
        let goodHead = try d.add([.writable(good, 32)])
        d.notify()
        #expect(d.getUsed().map { [$0.id, $0.len] } == [[UInt32(goodHead), 32]])
        #expect(d.bytes(good, 32) != [UInt8](repeating: 0, count: 32))
        #expect(d.interrupts() == 1)
        #expect(rng.badRequests == 1)
    }

    @Test func aBadRequestBetweenGoodOnesInOneBatch() throws {
        let rng = try VirtioRng(logger: quietLogger())
        let d = try VirtioTestDriver(device: rng)
        try d.initialize(queueSize: 8)
        let a = d.allocate(16), b = d.allocate(16)
        let first = try d.add([.writable(a, 16)])
        d.writeDescriptor(table: d.queue(0).desc, index: 6, address: UInt64.max, length: 16, flags: VirtqDesc.write, next: 0)
        d.publish(head: 6)
        let last = try d.add([.writable(b, 16)])
        #expect(d.kick())
        #expect(d.getUsed().map { [$0.id, $0.len] } == [[UInt32(first), 16], [6, 0], [UInt32(last), 16]])
        #expect(d.interrupts() == 1)
    }

    @Test func aHeadOutsideTheQueueIsDroppedAndTheQueueCarriesOn() throws {
        let rng = try VirtioRng(logger: quietLogger())
        let d = try VirtioTestDriver(device: rng)
        try d.initialize(queueSize: 8)
        d.publish(head: 8)
        d.publish(head: 0xFFFF)
        d.notify()
        #expect(d.status & VirtioStatus.deviceNeedsReset == 0)
        #expect(d.usedIdx() == 0)  // no valid id to give back
        #expect(rng.badRequests == 2)
        let buffer = d.allocate(16)
        let head = try d.add([.writable(buffer, 16)])
        d.notify()
        #expect(d.getUsed().map { [$0.id, $0.len] } == [[UInt32(head), 16]])
    }

    @Test func aFullRingIsServedInOneGo() throws {
        let rng = try VirtioRng(logger: quietLogger())
        let d = try VirtioTestDriver(device: rng)
        try d.initialize(queueSize: 8)
        var heads: [UInt32] = []
        for _ in 0..<8 { heads.append(UInt32(try d.add([.writable(d.allocate(8), 8)]))) }
        #expect(throws: VirtioTestDriverError.outOfDescriptors) { try d.add([.writable(d.allocate(8), 8)]) }
        #expect(d.kick())
        #expect(d.getUsed().map(\.id) == heads)
        #expect(d.interrupts() == 1)
    }

    @Test(arguments: [UInt16(9), 100, 0x8000, 0xFFFF])
    func availableIndexMoreThanAQueueAheadNeedsReset(availIdx: UInt16) throws {
        let rng = try VirtioRng(logger: quietLogger())
        let d = try VirtioTestDriver(device: rng)
        try d.initialize(queueSize: 8)
        let buffer = d.allocate(16)
        try d.add([.writable(buffer, 16)])
        d.setAvailIndex(availIdx)
        _ = d.interrupts()
        d.notify()
        #expect(d.status & VirtioStatus.deviceNeedsReset != 0)
        #expect(d.interrupts() == 1)
        #expect(d.handleInterrupt() == VirtioInterrupt.configChange)
        #expect(d.usedIdx() == 0)
        #expect(d.bytes(buffer, 16) == [UInt8](repeating: 0, count: 16))
        // Dead until reset: fixing the index and notifying again changes nothing.
        d.setAvailIndex(1)
        d.notify()
        #expect(d.usedIdx() == 0)
        #expect(d.interrupts() == 0)
        // Linux's answer to DEVICE_NEEDS_RESET is a reset and a fresh bring-up.
        try d.initialize(queueSize: 8)
        let good = d.allocate(16)
        let head = try d.add([.writable(good, 16)])
        d.notify()
        #expect(d.getUsed().map { [$0.id, $0.len] } == [[UInt32(head), 16]])
    }
}

/// One pass over a queue takes at most a ring's worth of chains, however fast the driver
/// refills it; the queue's doorbell brings the device back for the rest.
@Suite struct VirtQueueBudgetTests {
    @Test func aPassStopsAtOneRingAndRingsTheDoorbell() throws {
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 1 << 20))
        let doorbell = try EventFd()
        let queue = VirtQueue(maxSize: 4, notifier: doorbell)
        queue.descriptorTable = 0x1000
        queue.availableRing = 0x2000
        queue.usedRing = 0x3000
        queue.ready = true
        #expect(queue.activate(features: VirtioFeature.version1, memory: memory))
        for i in UInt16(0)..<4 {
            try storeDescriptor(memory, table: 0x1000, i, address: 0x10000, length: 8, flags: VirtqDesc.write)
        }
        var availIdx: UInt16 = 0
        func offer(_ head: UInt16) throws {
            try memory.store(head, at: 0x2000 + 4 + 2 * UInt64(availIdx % 4))
            availIdx &+= 1
            try memory.store(availIdx, at: 0x2002)
        }
        queue.beginPass()
        var taken = 0
        // The driver refills each slot as soon as it is used: the ring never runs dry.
        for round in 0..<12 {
            try offer(UInt16(round % 4))
            guard let chain = try queue.pop(memory) else { break }
            taken += 1
            try queue.addUsed(memory, head: chain.head, length: 0)
        }
        #expect(taken == 4)
        #expect(doorbell.consume() != nil, "the doorbell was not rung for the rest")
        queue.beginPass()
        #expect(try queue.pop(memory) != nil)
    }

    @Test func anInactiveQueueDoesNothing() throws {
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 1 << 20))
        let queue = VirtQueue(maxSize: 8)
        queue.descriptorTable = UInt64.max & ~0xF
        queue.availableRing = UInt64.max & ~0x1
        queue.usedRing = UInt64.max & ~0x3
        #expect(!queue.activate(features: VirtioFeature.version1, memory: memory))  // not ready
        queue.ready = true
        #expect(!queue.activate(features: VirtioFeature.version1, memory: memory))  // not valid
        #expect(try queue.pop(memory) == nil)
        #expect(!queue.hasAvailable(memory))
        #expect(!queue.needsInterrupt(memory))
        queue.unpop(3)
        #expect(throws: VirtQueueError.notActive) { try queue.addUsed(memory, head: 0, length: 0) }
    }
}
