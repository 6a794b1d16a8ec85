/// The guest's way to the metadata service, inside the net device as Firecracker's "dumbo"
/// is: ARP for the MMDS address, and TCP to its port 80 carrying HTTP. Frames from the
/// guest to that address are consumed here and never reach the tap; the answers are
/// handed to the guest before anything the tap has.
///
/// It is a small TCP: no window scaling, SACK or timestamps (the SYN-ACK offers none, so
/// the guest uses none), a fixed receive window the size of one request, and one
/// response in flight per connection. The link to the guest loses nothing (a frame waits
/// until the guest has a buffer for it), so there is no retransmission timer; three
/// duplicate ACKs resend from the first unacknowledged byte. Every table is bounded: a
/// guest can hold at most `maxConnections` connections of `requestCapacity` bytes and
/// one response each, and the control-segment queue drops what does not fit (TCP
/// recovers it).
///
/// Not thread-safe: the net device calls it under its own lock.
final class MmdsNetworkStack {
    typealias Mac = NetworkHeaders.Mac
    typealias Flags = NetworkHeaders.TcpFlags

    /// Locally administered and unicast, as Firecracker's.
    static let ownMac: Mac = 0x06_01_23_45_67_01
    static let port: UInt16 = 80
    static let maxConnections = 30
    /// One request's head at most, and the receive window the stack advertises.
    static let requestCapacity = 4096
    static let maxControls = 128
    /// RFC 9293's default when a SYN carries no MSS option.
    static let defaultMss = 536
    /// Smaller MSS options are raised to this (Linux's own floor), so a guest cannot ask
    /// for a frame per byte.
    static let minimumMss = 88

    let service: MmdsService
    let ownIp: UInt32
    /// The largest segment payload the guest's MTU allows.
    let maxSegment: Int

    /// A segment or ARP reply that carries no response data, waiting for a guest buffer.
    private enum Control {
        case arpReply(NetworkHeaders.ArpRequest)
        case segment(peerMac: Mac, peerIp: UInt32, peerPort: UInt16, seq: UInt32, ack: UInt32, flags: Flags,
                     window: UInt16, mss: UInt16?)
    }

    private var connections: [MmdsTcpConnection] = []
    private var controls: [Control] = []
    private var activity: UInt64 = 0
    /// The bytes of every connection's `response`.
    private var heldResponseBytes = 0
    private var nextConnection = 0

    private(set) var counters = MmdsCounters()

    init(service: MmdsService, mtu: UInt16, responseBudget: Int = MmdsNetworkStack.defaultResponseBudget) {
        self.responseBudget = responseBudget
        self.service = service
        ownIp = service.config.ipv4Address
        maxSegment = max(Int(mtu) - NetworkHeaders.ipv4MinimumLength - NetworkHeaders.tcpMinimumLength, 88)
        connections.reserveCapacity(Self.maxConnections)
        controls.reserveCapacity(Self.maxControls)
    }

    var connectionCount: Int { connections.count }

    /// The driver reset the device: every connection and queued segment is forgotten.
    func reset() {
        connections.removeAll(keepingCapacity: true)
        controls.removeAll(keepingCapacity: true)
        heldResponseBytes = 0
    }

    /// Whether a frame whose first bytes are `head` (Ethernet header onwards) is for the
    /// service: an ARP request for its address, or IPv4 to it. The device copies only
    /// these out of the ring.
    func isForService(_ head: UnsafeRawBufferPointer) -> Bool {
        guard head.count >= NetworkHeaders.ethernetLength + 2 else { return false }
        switch NetworkHeaders.u16(head, 12) {
        case NetworkHeaders.etherTypeArp:
            return head.count >= 42 && NetworkHeaders.u32(head, 38) == ownIp
        case NetworkHeaders.etherTypeIPv4:
            return head.count >= 34 && NetworkHeaders.u32(head, 30) == ownIp
        default:
            return false
        }
    }

    /// Takes one frame the guest sent to the service. Malformed frames and protocols other
    /// than TCP are dropped: nothing else lives at that address.
    func receive(_ frame: UnsafeRawBufferPointer, checksumPartial: Bool) {
        counters.framesIn += 1
        guard frame.count >= NetworkHeaders.ethernetLength else { counters.dropped += 1; return }
        switch NetworkHeaders.u16(frame, 12) {
        case NetworkHeaders.etherTypeArp:
            guard let request = NetworkHeaders.arpRequest(frame), request.targetIp == ownIp else { counters.dropped += 1; return }
            queue(.arpReply(request))
        case NetworkHeaders.etherTypeIPv4:
            guard let ip = NetworkHeaders.ipv4(frame), ip.destination == ownIp, ip.proto == NetworkHeaders.protocolTcp,
                  let segment = NetworkHeaders.tcp(frame, ip, verifyChecksum: !checksumPartial)
            else { counters.dropped += 1; return }
            receive(segment, peerMac: NetworkHeaders.mac(frame, 6), peerIp: ip.source, data: frame)
        default:
            counters.dropped += 1
        }
    }

    private func receive(_ segment: NetworkHeaders.TcpSegment, peerMac: Mac, peerIp: UInt32, data frame: UnsafeRawBufferPointer) {
        activity &+= 1
        // Only port 80 has connections; a segment to any other port is refused without
        // touching one that shares its source port.
        guard segment.destinationPort == Self.port,
              let index = connections.firstIndex(where: { $0.peerIp == peerIp && $0.peerPort == segment.sourcePort }) else {
            accept(segment, peerMac: peerMac, peerIp: peerIp)
            return
        }
        if segment.flags.contains(.rst) {
            close(index)
            return
        }
        if segment.flags.contains(.syn) {
            if connections[index].synReceived && segment.seq &+ 1 == connections[index].rcvNxt {
                queueSynAck(connections[index])  // the guest did not get our SYN-ACK
            } else {
                reset(peerMac: peerMac, peerIp: peerIp, segment)
                close(index)
            }
            return
        }
        guard segment.flags.contains(.ack) else { return }
        // In place: a copy of the connection would copy its buffers on every segment.
        if update(&connections[index], segment, frame) { close(index) }
    }

    /// One ACK-bearing segment on an open connection; true when the connection is done.
    private func update(_ c: inout MmdsTcpConnection, _ segment: NetworkHeaders.TcpSegment, _ frame: UnsafeRawBufferPointer) -> Bool {
        c.lastActive = activity
        acknowledge(&c, segment)
        var mustAck = false
        if segment.seq != c.rcvNxt {
            // Out of order, already seen, or a keep-alive probe: say what is expected next
            // (RFC 9293, 3.10.7.4). A retransmitted request means our answer may be lost:
            // send it again from the first unacknowledged byte.
            mustAck = true
            if Int32(bitPattern: segment.seq &- c.rcvNxt) < 0 && segment.dataLength > 0 && c.inFlight > 0 && !c.synReceived {
                c.sndNxt = c.sndUna
                c.finSent = false
            }
        } else if segment.dataLength > 0 || segment.flags.contains(.fin) {
            mustAck = true
            if !c.peerFin {
                let taken = min(segment.dataLength, Self.requestCapacity - c.request.count)
                c.request.append(contentsOf: UnsafeRawBufferPointer(rebasing: frame[segment.dataOffset..<segment.dataOffset + taken]))
                c.rcvNxt &+= UInt32(taken)
                if taken == segment.dataLength && segment.flags.contains(.fin) {
                    c.rcvNxt &+= 1
                    c.peerFin = true
                }
            }
        }
        serveRequests(&c)
        if c.peerFin { c.closeAfterResponse = true }
        if c.peerFin && c.finSent && c.inFlight == 0 {
            // Both FINs are acknowledged once ours is: the connection is gone (no
            // TIME_WAIT: the guest, not us, may reuse the port pair).
            if mustAck { queueAck(c) }
            return true
        }
        // A segment we send now carries the ACK; otherwise a bare one goes.
        if mustAck && !sendable(c) { queueAck(c) }
        return false
    }

    /// A segment for no connection: a SYN to port 80 opens one, anything else but a
    /// reset is answered with a reset.
    private func accept(_ segment: NetworkHeaders.TcpSegment, peerMac: Mac, peerIp: UInt32) {
        if segment.flags.contains(.rst) { return }
        guard segment.flags.intersection([.syn, .ack, .fin]) == .syn, segment.destinationPort == Self.port else {
            reset(peerMac: peerMac, peerIp: peerIp, segment)
            return
        }
        if connections.count >= Self.maxConnections, let oldest = connections.indices.min(by: { connections[$0].lastActive < connections[$1].lastActive }) {
            let old = connections[oldest]
            close(oldest)
            queue(.segment(peerMac: old.peerMac, peerIp: old.peerIp, peerPort: old.peerPort, seq: old.sndNxt, ack: old.rcvNxt,
                           flags: [.rst, .ack], window: 0, mss: nil))
            counters.resets += 1
        }
        var generator = SystemRandomNumberGenerator()
        let iss = UInt32.random(in: 0...UInt32.max, using: &generator)
        let c = MmdsTcpConnection(peerMac: peerMac, peerIp: peerIp, peerPort: segment.sourcePort, iss: iss,
                           rcvNxt: segment.seq &+ 1, sndUna: iss, sndNxt: iss &+ 1, peerWindow: UInt32(segment.window),
                           mss: min(max(Int(segment.mss ?? UInt16(Self.defaultMss)), Self.minimumMss), maxSegment), responseSeq: iss &+ 1,
                           lastActive: activity)
        guard c.mss > 0 else { return }
        connections.append(c)
        counters.connectionsCreated += 1
        queueSynAck(c)
    }

    private func close(_ index: Int) {
        heldResponseBytes -= connections[index].response.count
        connections.remove(at: index)
        counters.connectionsDestroyed += 1
    }

    /// The ACK field and window of a segment on an open connection.
    private func acknowledge(_ c: inout MmdsTcpConnection, _ segment: NetworkHeaders.TcpSegment) {
        let advance = segment.ack &- c.sndUna
        guard advance <= c.inFlight else {
            queueAck(c)  // acknowledges what was never sent
            return
        }
        let windowChanged = UInt32(segment.window) != c.peerWindow
        c.peerWindow = UInt32(segment.window)
        if advance > 0 {
            c.sndUna = segment.ack
            c.synReceived = false
            c.duplicateAcks = 0
            if c.response.count > 0 && Int(c.sndUna &- c.responseSeq) >= c.response.count {
                c.responseSeq &+= UInt32(c.response.count)
                heldResponseBytes -= c.response.count
                c.response = []
            }
        } else if !c.synReceived && c.inFlight > 0 && segment.dataLength == 0 && !segment.flags.contains(.fin) && !windowChanged {
            c.duplicateAcks += 1
            if c.duplicateAcks == 3 {
                // Go back to the first unacknowledged byte; a FIN in flight goes again too.
                c.sndNxt = c.sndUna
                c.finSent = false
                c.duplicateAcks = 0
            }
        }
    }

    /// Answers the requests the guest has sent in full, one at a time: the next waits
    /// until the guest has acknowledged the last byte of the one before.
    private func serveRequests(_ c: inout MmdsTcpConnection) {
        while c.response.isEmpty && !c.closeAfterResponse && !c.synReceived {
            guard let end = Self.headEnd(c.request, from: c.scanFrom) else {
                c.scanFrom = max(c.request.count - 3, 0)
                if c.request.count >= Self.requestCapacity {
                    c.response = MmdsService.response(400, "Bad Request", body: "The HTTP request is too long.", close: true).bytes
                    heldResponseBytes += c.response.count
                    c.request = []
                    c.closeAfterResponse = true
                }
                return
            }
            let answer = responseWithinBudget(for: c.request[0..<end])
            counters.requests += 1
            c.request.removeFirst(end)
            c.scanFrom = 0
            c.responseSeq = c.sndNxt
            c.response = answer.bytes
            heldResponseBytes += answer.bytes.count
            c.closeAfterResponse = answer.close
        }
    }

    /// Where a request's head ends (just past CRLF CRLF), if it has, looking from `from`.
    static func headEnd(_ bytes: [UInt8], from: Int = 0) -> Int? {
        let start = max(3, from + 3)
        guard start < bytes.count else { return nil }
        for i in start..<bytes.count where bytes[i] == 0x0A && bytes[i - 1] == 0x0D && bytes[i - 2] == 0x0A && bytes[i - 3] == 0x0D {
            return i + 1
        }
        return nil
    }

    /// Responses held at once across connections, beyond the first: 30 connections that
    /// never acknowledge must not pin 30 copies of a large data store.
    static let defaultResponseBudget = 2 << 20
    let responseBudget: Int

    private func responseWithinBudget(for head: ArraySlice<UInt8>) -> MmdsService.Response {
        let answer = service.respond(to: head)
        guard heldResponseBytes > 0, heldResponseBytes + answer.bytes.count > responseBudget else { return answer }
        return MmdsService.response(503, "Service Unavailable", body: "Too many responses in flight; retry later.", close: true)
    }

    private func reset(peerMac: Mac, peerIp: UInt32, _ segment: NetworkHeaders.TcpSegment) {
        counters.resets += 1
        if segment.flags.contains(.ack) {
            queue(.segment(peerMac: peerMac, peerIp: peerIp, peerPort: segment.sourcePort, seq: segment.ack, ack: 0,
                           flags: .rst, window: 0, mss: nil))
        } else {
            var length = UInt32(truncatingIfNeeded: segment.dataLength)
            if segment.flags.contains(.syn) { length &+= 1 }
            if segment.flags.contains(.fin) { length &+= 1 }
            queue(.segment(peerMac: peerMac, peerIp: peerIp, peerPort: segment.sourcePort, seq: 0, ack: segment.seq &+ length,
                           flags: [.rst, .ack], window: 0, mss: nil))
        }
    }

    private func queueSynAck(_ c: MmdsTcpConnection) {
        queue(.segment(peerMac: c.peerMac, peerIp: c.peerIp, peerPort: c.peerPort, seq: c.iss, ack: c.rcvNxt,
                       flags: [.syn, .ack], window: c.advertisedWindow, mss: UInt16(maxSegment)))
    }

    private func queueAck(_ c: MmdsTcpConnection) {
        queue(.segment(peerMac: c.peerMac, peerIp: c.peerIp, peerPort: c.peerPort, seq: c.sndNxt, ack: c.rcvNxt,
                       flags: .ack, window: c.advertisedWindow, mss: nil))
    }

    private func queue(_ control: Control) {
        guard controls.count < Self.maxControls else { counters.dropped += 1; return }
        controls.append(control)
    }

    // MARK: Output

    private func sendable(_ c: MmdsTcpConnection) -> Bool {
        (c.hasUnsentData && c.inFlight < c.peerWindow) || c.finDue
    }

    /// Writes the next frame for the guest (Ethernet header onwards) into `buffer`, which
    /// holds at least an MTU-sized frame. Returns its length, or nil when there is none.
    func nextFrame(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard buffer.count >= NetworkHeaders.tcpDataOffset(syn: false) + maxSegment else { return nil }
        let length = frame(into: buffer)
        if let length { counters.bytesOut += UInt64(length) }
        return length
    }

    private func frame(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        if !controls.isEmpty {
            let control = controls.removeFirst()
            counters.framesOut += 1
            switch control {
            case .arpReply(let request):
                return NetworkHeaders.writeArpReply(buffer, to: request, ownMac: Self.ownMac, ownIp: ownIp)
            case let .segment(peerMac, peerIp, peerPort, seq, ack, flags, window, mss):
                return NetworkHeaders.writeTcp(buffer, to: peerMac, from: Self.ownMac, source: (ownIp, Self.port),
                                               destination: (peerIp, peerPort), seq: seq, ack: ack, flags: flags,
                                               window: window, mss: mss, dataLength: 0)
            }
        }
        // Connections take turns, so one long response does not hold the others back.
        for step in 0..<connections.count {
            let index = (nextConnection + step) % connections.count
            guard sendable(connections[index]) else { continue }
            nextConnection = index + 1
            counters.framesOut += 1
            return segment(from: &connections[index], into: buffer)
        }
        return nil
    }

    private func segment(from c: inout MmdsTcpConnection, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var flags: Flags = .ack
        var length = 0
        let seq = c.sndNxt
        if c.hasUnsentData && c.inFlight < c.peerWindow {
            let offset = c.unsentOffset
            length = min(c.mss, Int(c.peerWindow - c.inFlight), c.response.count - offset)
            let dataOffset = NetworkHeaders.tcpDataOffset(syn: false)
            c.response.withUnsafeBytes { bytes in
                UnsafeMutableRawBufferPointer(rebasing: buffer[dataOffset..<dataOffset + length])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + length]))
            }
            c.sndNxt &+= UInt32(length)
            flags.insert(.psh)
        }
        if c.finDue {
            flags.insert(.fin)
            c.finSent = true
            c.sndNxt &+= 1
        }
        return NetworkHeaders.writeTcp(buffer, to: c.peerMac, from: Self.ownMac, source: (ownIp, Self.port),
                                       destination: (c.peerIp, c.peerPort), seq: seq, ack: c.rcvNxt, flags: flags,
                                       window: c.advertisedWindow, mss: nil, dataLength: length)
    }
}
