import Glibc
import Logging
import Synchronization
import VMM

/// virtio-net (virtio 1.2, 5.1) over a TAP interface: one RX/TX queue pair, MAC, link
/// status, MTU, checksum and TSO offloads in both directions, mergeable RX buffers.
/// RX never drops a frame while the guest has buffers: a frame that does not fit waits,
/// and the tap is not read again until the guest adds buffers. TX takes whole chains in
/// any descriptor layout and, when the tap is full, waits for it to drain.
public final class VirtioNet: VirtioDevice, @unchecked Sendable {  // `scratch` (a raw buffer) is used only under `state` (Mutex), which holds the rest
    // Feature bits (virtio 1.2, 5.1.3)
    public static let featureCsum: UInt64 = 1 << 0
    public static let featureGuestCsum: UInt64 = 1 << 1
    public static let featureMtu: UInt64 = 1 << 3
    public static let featureMac: UInt64 = 1 << 5
    public static let featureGuestTso4: UInt64 = 1 << 7
    public static let featureGuestTso6: UInt64 = 1 << 8
    public static let featureHostTso4: UInt64 = 1 << 11
    public static let featureHostTso6: UInt64 = 1 << 12
    public static let featureMergeableRxBuffers: UInt64 = 1 << 15
    public static let featureStatus: UInt64 = 1 << 16

    public static let headerSize = Int(Tap.vnetHeaderSize)
    static let numBuffersOffset = 10
    /// Largest frame a tap hands over with TSO: 64 KiB of payload plus headers.
    static let maxFrame = 65_562 + headerSize
    /// The most chains one frame may span with mergeable RX buffers: a 64 KiB frame in
    /// Linux's smallest buffers (1518 bytes) takes 44. A guest posting smaller ones has its
    /// frames dropped rather than making us gather the whole ring for each.
    static let maxMergedBuffers = 64
    public static let rxQueue = 0
    public static let txQueue = 1

    public let deviceType = VirtioDeviceType.net
    public let queueMaxSizes: [UInt16] = [256, 256]
    public let tap: Tap
    public let mac: [UInt8]
    public let mtu: UInt16
    let loop: EventLoop
    /// Firecracker's `rx_rate_limiter` and `tx_rate_limiter`: frame bytes and frames.
    public let rxRateLimiter: RateLimiter
    public let txRateLimiter: RateLimiter
    /// Its lines are about the guest's requests, which a guest can repeat at will: rate limited.
    let logger: RateLimitedLogger

    /// Counters for metrics and tests.
    public struct Counters: Sendable, Equatable {
        public var rxFrames: UInt64 = 0
        public var rxBytes: UInt64 = 0
        public var rxDropped: UInt64 = 0
        public var txFrames: UInt64 = 0
        public var txBytes: UInt64 = 0
        public var txDropped: UInt64 = 0
        public var rxRateLimiter = RateLimiter.Counters()
        public var txRateLimiter = RateLimiter.Counters()
        /// nil: this interface does not reach the metadata service.
        public var mmds: MmdsCounters?
    }

    private struct State {
        var context: VirtioDeviceContext?
        var mergeable = false
        /// A frame read from the tap that is waiting for guest buffers (or the RX limiter).
        var pendingLength = 0
        /// Whether the RX limiter has already taken the pending frame's tokens.
        var pendingAdmitted = false
        var tapReadPaused = false
        var txBlocked = false
        var counters = Counters()
        /// The metadata service's stack, when this interface reaches it (`/mmds/config`).
        var mmds: MmdsNetworkStack?
        var mmdsOutput = false
    }

    private let state: Mutex<State>
    private let scratch: UnsafeMutableRawBufferPointer
    /// A guest frame for the metadata service, copied out of its chain whole.
    private let mmdsScratch: UnsafeMutableRawBufferPointer?

    public init(tap: Tap, mac: [UInt8]?, mtu: UInt16 = 1500, rxRateLimiter: RateLimiterConfig = .unlimited,
                txRateLimiter: RateLimiterConfig = .unlimited, mmds: MmdsService? = nil, loop: EventLoop,
                logger: Logger) throws {
        self.tap = tap
        self.mac = mac ?? Self.randomMac()
        self.mtu = mtu
        self.loop = loop
        self.rxRateLimiter = try RateLimiter(rxRateLimiter)
        self.txRateLimiter = try RateLimiter(txRateLimiter)
        self.logger = RateLimitedLogger(logger)
        scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.maxFrame, alignment: 16)
        mmdsScratch = mmds.map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: Self.maxFrame, alignment: 16) }
        var initial = State()
        initial.mmds = mmds.map { MmdsNetworkStack(service: $0, mtu: mtu) }
        state = Mutex(initial)
        try loop.add(fd: tap.fd.rawValue, events: 0) { [weak self] events in self?.tapReady(events) }
    }

    deinit {
        loop.remove(fd: tap.fd.rawValue)
        scratch.deallocate()
        mmdsScratch?.deallocate()
    }

    /// A locally administered, unicast MAC (02:xx:xx:xx:xx:xx).
    public static func randomMac() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return [0x02] + (0..<5).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    public var counters: Counters {
        var counters = state.withLock { s in
            var counters = s.counters
            counters.mmds = s.mmds?.counters
            return counters
        }
        counters.rxRateLimiter = rxRateLimiter.counters
        counters.txRateLimiter = txRateLimiter.counters
        return counters
    }

    public var timedQueues: [TimedQueue] {
        [rxRateLimiter.timedQueue(Self.rxQueue), txRateLimiter.timedQueue(Self.txQueue)]
    }

    public var deviceCounters: DeviceCounters { .net(counters) }

    public var offeredFeatures: UInt64 {
        VirtioFeature.version1 | VirtioFeature.ringIndirectDescriptors | VirtioFeature.ringEventIndex
            | Self.featureCsum | Self.featureGuestCsum | Self.featureGuestTso4 | Self.featureGuestTso6
            | Self.featureHostTso4 | Self.featureHostTso6 | Self.featureMergeableRxBuffers
            | Self.featureMac | Self.featureStatus | Self.featureMtu
    }

    /// struct virtio_net_config: mac, status (link up), max_virtqueue_pairs, mtu.
    public var configSpace: [UInt8] {
        var w = ByteWriter(size: 12)
        w.put(mac, at: 0)
        w.u16(1, at: 6)  // VIRTIO_NET_S_LINK_UP
        w.u16(1, at: 8)
        w.u16(mtu, at: 10)
        return w.bytes
    }

    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        readConfig(configSpace, offset: offset, into: data)
    }

    public func activate(_ context: VirtioDeviceContext) throws {
        let f = context.features
        // Offloaded frames reach the guest only if it can take them.
        try tap.setOffloads(checksum: f & Self.featureGuestCsum != 0,
                            tso4: f & Self.featureGuestTso4 != 0, tso6: f & Self.featureGuestTso6 != 0)
        state.withLock { s in
            s.context = context
            s.mergeable = f & Self.featureMergeableRxBuffers != 0
            s.pendingLength = 0
            s.pendingAdmitted = false
            s.tapReadPaused = false
            s.txBlocked = false
            s.mmds?.reset()
        }
        try loop.modify(fd: tap.fd.rawValue, events: EventLoop.readable)
    }

    public func reset() {
        state.withLock { disarm(&$0) }
    }

    /// Stops serving the guest: the tap is not watched and the rings are forgotten.
    private func disarm(_ s: inout State) {
        try? loop.modify(fd: tap.fd.rawValue, events: 0)
        s.context = nil
        s.pendingLength = 0
        s.pendingAdmitted = false
        s.mmds?.reset()
    }

    public func process(queue index: Int) throws {
        try state.withLock { s in
            switch index {
            case Self.rxQueue: try receive(&s)
            case Self.txQueue: try transmit(&s)
            default: break
            }
        }
    }

    /// The tap is readable (a frame for the guest) or writable again (TX can go on). A
    /// ring found broken here fails the device through the transport; until the driver
    /// resets it the tap is not watched.
    private func tapReady(_ events: UInt32) {
        state.withLock { s in
            do {
                if events & EventLoop.writable != 0, s.txBlocked {
                    s.txBlocked = false
                    try transmit(&s)
                }
                if events & EventLoop.readable != 0 { try receive(&s) }
            } catch {
                s.context?.failure.report(error, in: "tap \(tap.name)")
                disarm(&s)
            }
        }
    }

    private func watchTap(_ s: State) {
        var events: UInt32 = 0
        if !s.tapReadPaused { events |= EventLoop.readable }
        if s.txBlocked { events |= EventLoop.writable }
        try? loop.modify(fd: tap.fd.rawValue, events: events)
    }

    // MARK: RX: tap -> guest

    private func receive(_ s: inout State) throws {
        guard let context = s.context else { return }
        let queue = context.queues[Self.rxQueue]
        var delivered = false
        while true {
            if s.pendingLength == 0, let n = s.mmds?.nextFrame(into: UnsafeMutableRawBufferPointer(rebasing: scratch[Self.headerSize...])) {
                // The metadata service's answers go first: the guest is waiting on them.
                UnsafeMutableRawBufferPointer(rebasing: scratch[0..<Self.headerSize]).initializeMemory(as: UInt8.self, repeating: 0)
                s.pendingLength = Self.headerSize + n
            }
            if s.pendingLength == 0 {
                guard let n = try tap.read(into: scratch), n > 0 else { break }
                if n < Self.headerSize {
                    s.counters.rxDropped += 1
                    continue
                }
                s.pendingLength = n
            }
            // Held back: the frame waits in `scratch` and the tap is not read until the
            // limiter's timer runs this queue again.
            if !s.pendingAdmitted {
                guard rxRateLimiter.consume(bytes: UInt64(s.pendingLength - Self.headerSize)) else {
                    if !s.tapReadPaused {
                        s.tapReadPaused = true
                        watchTap(s)
                    }
                    break
                }
                s.pendingAdmitted = true
            }
            guard try deliver(length: s.pendingLength, mergeable: s.mergeable, &s, context) else {
                // No room: keep the frame, stop reading until the guest adds buffers.
                if !s.tapReadPaused {
                    s.tapReadPaused = true
                    watchTap(s)
                }
                break
            }
            delivered = true
            s.pendingLength = 0
            s.pendingAdmitted = false
        }
        if s.tapReadPaused && s.pendingLength == 0 {
            s.tapReadPaused = false
            watchTap(s)
        }
        if delivered { context.interrupt.signalUsed(queue, context.memory) }
    }

    /// Copies the frame in `scratch` into as many chains as it needs. Returns false, with
    /// nothing consumed, when the guest has not made enough room available yet.
    private func deliver(length: Int, mergeable: Bool, _ s: inout State, _ context: VirtioDeviceContext) throws -> Bool {
        let queue = context.queues[Self.rxQueue]
        var chains: [DescriptorChain] = []
        var capacity = 0
        // Gather chains until the frame fits (one chain without mergeable buffers).
        while capacity < length {
            let chain: DescriptorChain
            do {
                guard let next = try queue.pop(context.memory) else {
                    queue.unpop(chains.count)
                    return false
                }
                chain = next
            } catch let error as DescriptorChainError {
                // pop already returned the bad chain; drop this frame with the buffers taken.
                logger.warning("virtio-net \(tap.name): bad RX chain: \(error)")
                try dropFrame(giving: chains, &s, context)
                return true
            }
            let room = chain.writableLength
            chains.append(chain)
            capacity += room
            if capacity < length && chains.count == Self.maxMergedBuffers {
                try dropFrame(giving: chains, &s, context)
                return true
            }
            if !mergeable || (chains.count == 1 && room < Self.headerSize) {
                if capacity < length || room < Self.headerSize {
                    // A buffer that can never hold this frame: the frame is dropped, the buffer returned.
                    try dropFrame(giving: chains, &s, context)
                    return true
                }
                break
            }
        }
        // num_buffers (header bytes 10-11): how many chains the frame spans.
        scratch.storeBytes(of: UInt16(chains.count).littleEndian, toByteOffset: Self.numBuffersOffset, as: UInt16.self)
        var offset = 0
        for chain in chains {
            var writer = chain.writer(context.memory)
            let n = min(writer.remaining, length - offset)
            writer.write(UnsafeRawBufferPointer(rebasing: scratch[offset..<offset + n]))
            try queue.addUsed(context.memory, head: chain.head, length: UInt32(n))
            offset += n
        }
        s.counters.rxFrames += 1
        s.counters.rxBytes += UInt64(length - Self.headerSize)
        return true
    }

    private func dropFrame(giving chains: [DescriptorChain], _ s: inout State, _ context: VirtioDeviceContext) throws {
        for chain in chains { try context.queues[Self.rxQueue].addUsed(context.memory, head: chain.head, length: 0) }
        s.counters.rxDropped += 1
    }

    // MARK: TX: guest -> tap

    private func transmit(_ s: inout State) throws {
        guard let context = s.context, !s.txBlocked else { return }
        let queue = context.queues[Self.txQueue]
        var completed = false
        var dropped: UInt64 = 0
        defer { s.counters.txDropped += dropped }
        while let chain = try queue.nextChain(context.memory, badChain: { error in
            logger.warning("virtio-net \(tap.name): bad TX chain: \(error)")
            dropped += 1
            completed = true
        }) {
            var reader = chain.reader(context.memory)
            let length = reader.remaining
            guard length >= Self.headerSize, length <= Self.maxFrame else {
                s.counters.txDropped += 1
                try queue.addUsed(context.memory, head: chain.head, length: 0)
                completed = true
                continue
            }
            guard txRateLimiter.consume(bytes: UInt64(length - Self.headerSize)) else {
                queue.unpop()
                break
            }
            if let stack = s.mmds, let mmdsScratch, Self.isForService(reader, stack) {
                // Never reaches the tap: the service answers it on the RX queue.
                let frame = UnsafeMutableRawBufferPointer(rebasing: mmdsScratch[0..<length])
                _ = reader.read(into: frame)
                stack.receive(UnsafeRawBufferPointer(rebasing: frame[Self.headerSize...]),
                              checksumPartial: frame[0] & Self.headerNeedsChecksum != 0)
                s.mmdsOutput = true
                try queue.addUsed(context.memory, head: chain.head, length: 0)
                completed = true
                continue
            }
            // The chain's readable bytes are exactly what the tap wants: vnet header + frame.
            guard try tap.write(reader.take(length)) else {
                txRateLimiter.giveBack(bytes: UInt64(length - Self.headerSize))
                queue.unpop()
                s.txBlocked = true
                watchTap(s)
                break
            }
            s.counters.txFrames += 1
            s.counters.txBytes += UInt64(length - Self.headerSize)
            try queue.addUsed(context.memory, head: chain.head, length: 0)
            completed = true
        }
        if completed { context.interrupt.signalUsed(queue, context.memory) }
        if s.mmdsOutput {
            s.mmdsOutput = false
            try receive(&s)
        }
    }

    /// VIRTIO_NET_HDR_F_NEEDS_CSUM: the guest left the L4 checksum to the device.
    static let headerNeedsChecksum: UInt8 = 1

    /// Reads the headers of the frame in `reader` (without consuming it) to see whether
    /// it goes to the metadata service, so only those frames are copied out.
    private static func isForService(_ reader: ChainReader, _ stack: MmdsNetworkStack) -> Bool {
        var peek = reader
        return withUnsafeTemporaryAllocation(byteCount: headerSize + 42, alignment: 8) { head in
            let n = peek.read(into: head)
            guard n > headerSize else { return false }
            return stack.isForService(UnsafeRawBufferPointer(rebasing: head[headerSize..<n]))
        }
    }
}
