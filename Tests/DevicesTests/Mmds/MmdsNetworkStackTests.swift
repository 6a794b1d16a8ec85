import Synchronization
import Testing
@testable import Devices

/// The metadata service's network stack against a guest TCP played frame by frame: ARP,
/// the handshake, requests, responses split at the MSS and the guest's window, the close
/// from either side, resets, and the bounds a hostile guest runs into.
@Suite struct MmdsNetworkStackTests {
    static let guestMac: UInt64 = 0x02_4B_41_54_41_01
    static let guestIp: UInt32 = 0x0A_C7_02_02  // 10.199.2.2
    static let mmdsIp = MmdsConfig.defaultAddress

    /// The host's data store as the service sees it: pointer -> value.
    final class Store: MmdsDataSource {
        let values: Mutex<[String: MmdsLookup]>
        init(_ values: [String: MmdsLookup]) { self.values = Mutex(values) }
        func lookup(pointer: String, json: Bool) -> MmdsLookup {
            values.withLock { $0[(json ? "json:" : "") + pointer] ?? .notFound }
        }
    }

    static let store = Store(["/latest/meta-data/ami-id": .value("ami-kata"), "/latest/meta-data": .value("ami-id\nlocal-ipv4"),
                              "json:/latest": .value("{\"meta-data\":{}}"), "/count": .unsupportedInImds,
                              "/big": .value(String(repeating: "x", count: 20_000))])

    final class Clock: Sendable {
        let now = Atomic<UInt64>(1_000_000_000)
        func advance(seconds: UInt64) { now.add(seconds * 1_000_000_000, ordering: .relaxed) }
    }

    static func makeStack(_ version: MmdsConfig.Version = .v1, mtu: UInt16 = 1500, clock: Clock = Clock()) -> MmdsNetworkStack {
        let service = MmdsService(config: MmdsConfig(version: version, networkInterfaces: ["eth0"]), source: store,
                                  clock: { clock.now.load(ordering: .relaxed) })
        return MmdsNetworkStack(service: service, mtu: mtu)
    }

    /// A segment the stack sent, parsed.
    struct Sent {
        var segment: NetworkHeaders.TcpSegment
        var data: [UInt8]
        var flags: NetworkHeaders.TcpFlags { segment.flags }
    }

    /// One guest TCP connection to the service, as Linux would drive it.
    struct GuestConnection {
        var port: UInt16
        var seq: UInt32 = 1000
        var ack: UInt32 = 0
        var window: UInt16 = 65_535

        mutating func segment(_ flags: NetworkHeaders.TcpFlags, data: [UInt8] = [], seq: UInt32? = nil, mss: UInt16? = nil,
                              corrupt: Bool = false) -> [UInt8] {
            var frame = [UInt8](repeating: 0, count: NetworkHeaders.tcpDataOffset(syn: mss != nil) + data.count)
            let offset = NetworkHeaders.tcpDataOffset(syn: mss != nil)
            frame.replaceSubrange(offset..<offset + data.count, with: data)
            frame.withUnsafeMutableBytes { b in
                _ = NetworkHeaders.writeTcp(b, to: MmdsNetworkStack.ownMac, from: MmdsNetworkStackTests.guestMac,
                                            source: (MmdsNetworkStackTests.guestIp, port), destination: (MmdsNetworkStackTests.mmdsIp, 80),
                                            seq: seq ?? self.seq, ack: ack, flags: flags, window: window, mss: mss, dataLength: data.count)
            }
            if corrupt { frame[frame.count - 1] ^= 0xFF }
            if seq == nil {
                self.seq &+= UInt32(data.count)
                if flags.contains(.syn) || flags.contains(.fin) { self.seq &+= 1 }
            }
            return frame
        }
    }

    static func send(_ stack: MmdsNetworkStack, _ frame: [UInt8], partial: Bool = false) {
        frame.withUnsafeBytes { stack.receive($0, checksumPartial: partial) }
    }

    /// Every frame the stack has ready, TCP ones parsed (ARP replies come back as nil segments).
    static func drain(_ stack: MmdsNetworkStack) -> [(frame: [UInt8], tcp: Sent?)] {
        var out: [(frame: [UInt8], tcp: Sent?)] = []
        var buffer = [UInt8](repeating: 0, count: 70_000)
        while let n = buffer.withUnsafeMutableBytes({ stack.nextFrame(into: $0) }) {
            let frame = Array(buffer[0..<n])
            var sent: Sent?
            frame.withUnsafeBytes { b in
                if let ip = NetworkHeaders.ipv4(b), let tcp = NetworkHeaders.tcp(b, ip, verifyChecksum: true) {
                    sent = Sent(segment: tcp, data: Array(frame[tcp.dataOffset..<tcp.dataOffset + tcp.dataLength]))
                }
            }
            out.append((frame, sent))
            if out.count > 1000 { break }
        }
        return out
    }

    /// Handshake, then `request`; returns the segments that came back and keeps `c` in step.
    static func open(_ stack: MmdsNetworkStack, _ c: inout GuestConnection, mss: UInt16 = 1460) throws -> Sent {
        send(stack, c.segment(.syn, mss: mss))
        let synAck = try #require(drain(stack).compactMap(\.tcp).first { $0.segment.destinationPort == c.port })
        #expect(synAck.flags == [.syn, .ack])
        #expect(synAck.segment.ack == c.seq)
        #expect(synAck.segment.mss == 1460)
        c.ack = synAck.segment.seq &+ 1
        send(stack, c.segment(.ack))
        return synAck
    }

    /// Sends `request` and acknowledges everything until the stack has nothing more; the
    /// response's bytes in order, and whether a FIN came.
    static func exchange(_ stack: MmdsNetworkStack, _ c: inout GuestConnection, _ request: String) -> (text: String, fin: Bool, segments: Int) {
        send(stack, c.segment([.ack, .psh], data: Array(request.utf8)))
        var bytes: [UInt8] = [], fin = false, segments = 0
        for _ in 0..<200 {
            let out = drain(stack).compactMap(\.tcp)
            if out.isEmpty { break }
            for s in out {
                if s.segment.seq == c.ack { bytes += s.data; c.ack &+= UInt32(s.data.count) }
                if s.flags.contains(.fin) { fin = true; c.ack &+= 1 }
                if !s.data.isEmpty { segments += 1 }
            }
            send(stack, c.segment(.ack))
        }
        return (String(decoding: bytes, as: UTF8.self), fin, segments)
    }

    /// A broadcast ARP request from the guest: who has `target`?
    static func arpRequest(for target: UInt32, from sender: UInt32 = guestIp) -> [UInt8] {
        var request = [UInt8](repeating: 0, count: 42)
        request.withUnsafeMutableBytes { b in
            NetworkHeaders.putMac(b, 0, 0xFFFF_FFFF_FFFF)
            NetworkHeaders.putMac(b, 6, guestMac)
            NetworkHeaders.put16(b, 12, NetworkHeaders.etherTypeArp)
            NetworkHeaders.put16(b, 14, 1)
            NetworkHeaders.put16(b, 16, 0x0800)
            b[18] = 6; b[19] = 4
            NetworkHeaders.put16(b, 20, 1)
            NetworkHeaders.putMac(b, 22, guestMac)
            NetworkHeaders.put32(b, 28, sender)
            NetworkHeaders.put32(b, 38, target)
        }
        return request
    }

    @Test func arpRequestsForTheServiceAreAnswered() throws {
        let stack = Self.makeStack()
        var request = Self.arpRequest(for: Self.mmdsIp)
        #expect(request.withUnsafeBytes { stack.isForService($0) })
        Self.send(stack, request)
        let reply = try #require(Self.drain(stack).first?.frame)
        reply.withUnsafeBytes { b in
            #expect(NetworkHeaders.mac(b, 0) == Self.guestMac)
            #expect(NetworkHeaders.u16(b, 20) == 2)  // reply
            #expect(NetworkHeaders.mac(b, 22) == MmdsNetworkStack.ownMac)
            #expect(NetworkHeaders.u32(b, 28) == Self.mmdsIp)
            #expect(NetworkHeaders.u32(b, 38) == Self.guestIp)
        }
        // For another address: not the service's frame.
        request.withUnsafeMutableBytes { NetworkHeaders.put32($0, 38, 0x0A_C7_02_01) }
        #expect(!request.withUnsafeBytes { stack.isForService($0) })
    }

    @Test func v1AnswersAGetWithAndWithoutAToken() throws {
        let stack = Self.makeStack(.v1)
        var c = GuestConnection(port: 40_000)
        _ = try Self.open(stack, &c)
        let plain = Self.exchange(stack, &c, "GET /latest/meta-data/ami-id HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(plain.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(plain.text.hasSuffix("\r\n\r\nami-kata"))
        #expect(!plain.fin)  // HTTP/1.1 keeps the connection
        // The same connection: a token, then a GET with it, and one with a bad token (V1 answers).
        let token = Self.exchange(stack, &c, "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 60\r\n\r\n")
        #expect(token.text.hasPrefix("HTTP/1.1 200 OK"))
        let value = String(token.text.split(separator: "\r\n\r\n").last ?? "")
        #expect(value.utf8.count == 64)
        let withToken = Self.exchange(stack, &c, "GET /latest/meta-data/ HTTP/1.1\r\nX-metadata-token: \(value)\r\n\r\n")
        #expect(withToken.text.hasSuffix("\r\n\r\nami-id\nlocal-ipv4"))
        let badToken = Self.exchange(stack, &c, "GET /latest/meta-data/ami-id HTTP/1.1\r\nX-metadata-token: nope\r\n\r\n")
        #expect(badToken.text.hasPrefix("HTTP/1.1 200 OK"))
        #expect(stack.counters.requests == 4)
    }

    @Test func v2NeedsAValidUnexpiredToken() throws {
        let clock = Clock()
        let stack = Self.makeStack(.v2, clock: clock)
        var c = GuestConnection(port: 40_001)
        _ = try Self.open(stack, &c)
        let none = Self.exchange(stack, &c, "GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n")
        #expect(none.text.hasPrefix("HTTP/1.1 401 Unauthorized"))
        #expect(none.text.contains("No MMDS token provided"))
        let token = Self.exchange(stack, &c, "PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 5\r\n\r\n")
        let value = String(token.text.split(separator: "\r\n\r\n").last ?? "")
        let good = Self.exchange(stack, &c, "GET /latest/meta-data/ami-id HTTP/1.1\r\nX-metadata-token: \(value)\r\n\r\n")
        #expect(good.text.hasSuffix("ami-kata"))
        let json = Self.exchange(stack, &c, "GET /latest HTTP/1.1\r\nAccept: application/json\r\nX-aws-ec2-metadata-token: \(value)\r\n\r\n")
        #expect(json.text.contains("Content-Type: application/json"))
        #expect(json.text.hasSuffix("{\"meta-data\":{}}"))
        clock.advance(seconds: 6)
        let expired = Self.exchange(stack, &c, "GET /latest/meta-data/ami-id HTTP/1.1\r\nX-metadata-token: \(value)\r\n\r\n")
        #expect(expired.text.hasPrefix("HTTP/1.1 401"))
        // Refusals a guest can ask for: bad lifetimes, a relayed request, other methods.
        for (request, status) in [("PUT /latest/api/token HTTP/1.1\r\n\r\n", "400"),
                                  ("PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 0\r\n\r\n", "400"),
                                  ("PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 21601\r\n\r\n", "400"),
                                  ("PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 60\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n", "400"),
                                  ("PUT /latest/other HTTP/1.1\r\nX-metadata-token-ttl-seconds: 60\r\n\r\n", "404"),
                                  ("DELETE /latest HTTP/1.1\r\n\r\n", "405")] {
            let answer = Self.exchange(stack, &c, request)
            #expect(answer.text.hasPrefix("HTTP/1.1 \(status) "), "\(request): \(answer.text)")
        }
    }

    @Test func lookupsThatFailSayWhy() throws {
        let stack = Self.makeStack()
        var c = GuestConnection(port: 40_002)
        _ = try Self.open(stack, &c)
        #expect(Self.exchange(stack, &c, "GET /missing HTTP/1.1\r\n\r\n").text.contains("404 Not Found"))
        #expect(Self.exchange(stack, &c, "GET /count HTTP/1.1\r\n\r\n").text.contains("501 Not Implemented"))
        let bad = Self.exchange(stack, &c, "GARBAGE\r\n\r\n")
        #expect(bad.text.hasPrefix("HTTP/1.1 400 Bad Request"))
        #expect(bad.fin)  // a malformed request ends the connection
    }

    @Test func responsesFollowTheMssAndTheGuestsWindow() throws {
        let stack = Self.makeStack()
        var c = GuestConnection(port: 40_003, window: 3000)
        _ = try Self.open(stack, &c, mss: 1000)
        Self.send(stack, c.segment([.ack, .psh], data: Array("GET /big HTTP/1.0\r\n\r\n".utf8)))
        // Before any ACK: at most the window's worth, in segments of at most the MSS.
        let first = Self.drain(stack).compactMap(\.tcp).filter { !$0.data.isEmpty }
        #expect(first.count == 3)
        #expect(first.allSatisfy { $0.data.count <= 1000 })
        #expect(first.reduce(0) { $0 + $1.data.count } == 3000)
        // The rest after ACKs; HTTP/1.0 closes after the response.
        var text = first.flatMap(\.data)
        c.ack &+= 3000
        var fin = false
        for _ in 0..<100 where !fin {
            Self.send(stack, c.segment(.ack))
            for s in Self.drain(stack).compactMap(\.tcp) {
                text += s.data
                c.ack &+= UInt32(s.data.count)
                if s.flags.contains(.fin) { fin = true; c.ack &+= 1 }
            }
        }
        #expect(fin)
        #expect(String(decoding: text, as: UTF8.self).hasSuffix(String(repeating: "x", count: 20_000)))
        // The guest's FIN and last ACK: the connection is gone.
        Self.send(stack, c.segment([.fin, .ack]))
        #expect(stack.connectionCount == 0)
    }

    @Test func theGuestClosingFirstGetsAFinBack() throws {
        let stack = Self.makeStack()
        var c = GuestConnection(port: 40_004)
        _ = try Self.open(stack, &c)
        _ = Self.exchange(stack, &c, "GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n")
        Self.send(stack, c.segment([.fin, .ack]))
        let fin = try #require(Self.drain(stack).compactMap(\.tcp).first)
        #expect(fin.flags.contains(.fin) && fin.segment.ack == c.seq)
        c.ack = fin.segment.seq &+ 1
        Self.send(stack, c.segment(.ack))
        #expect(stack.connectionCount == 0)
    }

    @Test func duplicateAcksResendFromTheFirstUnacknowledgedByte() throws {
        let stack = Self.makeStack()
        var c = GuestConnection(port: 40_005)
        _ = try Self.open(stack, &c, mss: 1000)
        Self.send(stack, c.segment([.ack, .psh], data: Array("GET /big HTTP/1.1\r\n\r\n".utf8)))
        let sent = Self.drain(stack).compactMap(\.tcp).filter { !$0.data.isEmpty }
        #expect(sent.count >= 3)
        // The first segment was lost: the guest acknowledges only what it had, three times.
        for _ in 0..<3 { Self.send(stack, c.segment(.ack)) }
        let again = try #require(Self.drain(stack).compactMap(\.tcp).first { !$0.data.isEmpty })
        #expect(again.segment.seq == sent[0].segment.seq)
        #expect(again.data == sent[0].data)
    }

    @Test func outOfOrderAndCorruptSegmentsChangeNothing() throws {
        let stack = Self.makeStack()
        var c = GuestConnection(port: 40_006)
        _ = try Self.open(stack, &c)
        // A segment from the future: a duplicate ACK for what is expected, no data taken.
        Self.send(stack, c.segment([.ack, .psh], data: Array("GET / HTTP/1.1\r\n\r\n".utf8), seq: c.seq &+ 100))
        let ack = try #require(Self.drain(stack).first?.tcp)
        #expect(ack.flags == .ack && ack.segment.ack == c.seq && ack.data.isEmpty)
        // A bad checksum is dropped, unless the guest left it to the device.
        Self.send(stack, c.segment([.ack, .psh], data: Array("GET /count HTTP/1.1\r\n\r\n".utf8), seq: c.seq, corrupt: true))
        #expect(Self.drain(stack).isEmpty)
        #expect(stack.counters.dropped == 1)
        #expect(Self.exchange(stack, &c, "GET /count HTTP/1.1\r\n\r\n").text.contains("501"))
    }

    @Test func segmentsForNoConnectionAreReset() throws {
        let stack = Self.makeStack()
        var other = GuestConnection(port: 40_007)
        // A SYN to another port, and an ACK for no connection.
        var frame = other.segment(.syn, mss: 1460)
        frame.withUnsafeMutableBytes { NetworkHeaders.put16($0, 36, 22) }  // destination port
        frame.withUnsafeMutableBytes { b in  // fix the checksum after the edit
            NetworkHeaders.put16(b, 50, 0)
            let pseudo = NetworkHeaders.pseudoHeaderSum(source: Self.guestIp, destination: Self.mmdsIp, tcpLength: 24)
            NetworkHeaders.put16(b, 50, NetworkHeaders.fold(NetworkHeaders.sum(UnsafeRawBufferPointer(b), from: 34, count: 24, initial: pseudo)))
        }
        Self.send(stack, frame)
        let reset = try #require(Self.drain(stack).first?.tcp)
        #expect(reset.flags == [.rst, .ack] && reset.segment.ack == other.seq)
        var stray = GuestConnection(port: 40_008, ack: 777)
        Self.send(stack, stray.segment(.ack, data: [1, 2, 3]))
        let reset2 = try #require(Self.drain(stack).first?.tcp)
        #expect(reset2.flags == .rst && reset2.segment.seq == 777)
        #expect(stack.connectionCount == 0)
    }

    @Test func aGuestCannotGrowTheStack() throws {
        let stack = Self.makeStack()
        // More connections than the table holds: the least recently used are reset.
        for port in 0..<(MmdsNetworkStack.maxConnections + 10) {
            var c = GuestConnection(port: UInt16(41_000 + port))
            Self.send(stack, c.segment(.syn, mss: 1460))
        }
        #expect(stack.connectionCount == MmdsNetworkStack.maxConnections)
        #expect(stack.counters.resets == 10)
        _ = Self.drain(stack)
        // A request head that never ends: refused once the buffer is full.
        var c = GuestConnection(port: 42_000)
        _ = try Self.open(stack, &c)
        var refused = ""
        for _ in 0..<(MmdsNetworkStack.requestCapacity / 1000 + 1) {
            Self.send(stack, c.segment(.ack, data: [UInt8](repeating: 0x41, count: 1000)))
            for s in Self.drain(stack).compactMap(\.tcp) { refused += String(decoding: s.data, as: UTF8.self) }
        }
        #expect(refused.hasPrefix("HTTP/1.1 400 Bad Request"))
        // Far more control segments than the queue holds, none read: the queue stays bounded.
        for i in 0..<1000 {
            var stray = GuestConnection(port: UInt16(50_000 + i), ack: 1)
            Self.send(stack, stray.segment(.ack))
        }
        #expect(Self.drain(stack).count <= MmdsNetworkStack.maxControls)
    }

    @Test func malformedFramesAreDroppedWithoutATrap() {
        let stack = Self.makeStack()
        var c = GuestConnection(port: 43_000)
        let good = c.segment(.syn, mss: 1460)
        // Every truncation, and random bytes after the Ethernet header.
        for length in 0..<good.count { Self.send(stack, Array(good[0..<length])) }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var frame = Array(good[0..<14]) + (0..<Int.random(in: 0...80, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if frame.count > 14, Bool.random(using: &generator) { frame[14] = 0x45 }
            Self.send(stack, frame, partial: Bool.random(using: &generator))
            _ = Self.drain(stack)
        }
        #expect(stack.connectionCount <= MmdsNetworkStack.maxConnections)
    }

    /// What the review of the first version found: each was a way for a real guest's TCP
    /// to stall or lose a connection.
    @Test func keepAliveProbesAndZeroWindowsAreAcknowledged() throws {
        let stack = Self.makeStack()
        var c = GuestConnection(port: 44_000)
        _ = try Self.open(stack, &c)
        _ = Self.exchange(stack, &c, "GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n")
        // A keep-alive probe: one sequence number back, no data.
        Self.send(stack, c.segment(.ack, seq: c.seq &- 1))
        let probeAck = try #require(Self.drain(stack).first?.tcp)
        #expect(probeAck.flags == .ack && probeAck.segment.ack == c.seq)
        // A closed window: the request is acknowledged though the answer must wait.
        c.window = 0
        Self.send(stack, c.segment([.ack, .psh], data: Array("GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n".utf8)))
        let held = Self.drain(stack).compactMap(\.tcp)
        #expect(held.count == 1 && held[0].data.isEmpty && held[0].segment.ack == c.seq)
        c.window = 65_535
        Self.send(stack, c.segment(.ack))
        #expect(Self.drain(stack).compactMap(\.tcp).contains { String(decoding: $0.data, as: UTF8.self).hasSuffix("ami-kata") })
    }

    @Test func aSynToAnotherPortLeavesTheConnectionOnPort80Alone() throws {
        let stack = Self.makeStack()
        var c = GuestConnection(port: 44_001)
        _ = try Self.open(stack, &c)
        var other = GuestConnection(port: 44_001)
        var frame = other.segment(.syn, mss: 1460)
        frame.withUnsafeMutableBytes { b in
            NetworkHeaders.put16(b, 36, 443)
            NetworkHeaders.put16(b, 50, 0)
            let pseudo = NetworkHeaders.pseudoHeaderSum(source: Self.guestIp, destination: Self.mmdsIp, tcpLength: 24)
            NetworkHeaders.put16(b, 50, NetworkHeaders.fold(NetworkHeaders.sum(UnsafeRawBufferPointer(b), from: 34, count: 24, initial: pseudo)))
        }
        Self.send(stack, frame)
        #expect(Self.drain(stack).first?.tcp?.flags == [.rst, .ack])
        #expect(stack.connectionCount == 1)
        #expect(Self.exchange(stack, &c, "GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n").text.hasSuffix("ami-kata"))
    }

    @Test func aRetransmittedRequestResendsALostAnswer() throws {
        let stack = Self.makeStack()
        var c = GuestConnection(port: 44_002)
        _ = try Self.open(stack, &c)
        let request = Array("GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n".utf8)
        let start = c.seq
        Self.send(stack, c.segment([.ack, .psh], data: request))
        let lost = try #require(Self.drain(stack).compactMap(\.tcp).first { !$0.data.isEmpty })
        // The answer never arrived: the guest sends its request again.
        Self.send(stack, c.segment([.ack, .psh], data: request, seq: start))
        let again = try #require(Self.drain(stack).compactMap(\.tcp).first { !$0.data.isEmpty })
        #expect(again.segment.seq == lost.segment.seq && again.data == lost.data)
    }

    @Test func heldResponsesHaveABudget() throws {
        let service = MmdsService(config: MmdsConfig(networkInterfaces: ["eth0"]), source: Self.store)
        let stack = MmdsNetworkStack(service: service, mtu: 1500, responseBudget: 110_000)
        // /big is 20,000 bytes (plus its head): connections that never acknowledge pin their answers up to
        // the budget; past it the answer is a short 503.
        var statuses: [String] = []
        for i in 0..<8 {
            var c = GuestConnection(port: UInt16(46_000 + i), window: 100)
            _ = try Self.open(stack, &c)
            Self.send(stack, c.segment([.ack, .psh], data: Array("GET /big HTTP/1.1\r\n\r\n".utf8)))
            let first = Self.drain(stack).compactMap(\.tcp).first { !$0.data.isEmpty }
            statuses.append(String(decoding: first?.data.prefix(12) ?? [], as: UTF8.self))
        }
        #expect(statuses == Array(repeating: "HTTP/1.1 200", count: 5) + Array(repeating: "HTTP/1.1 503", count: 3), "\(statuses)")
    }

    @Test func pathsAreReadAsFirecrackerReadsThem() throws {
        let service = MmdsService(config: MmdsConfig(networkInterfaces: ["eth0"], imdsCompat: true), source: Self.store)
        func answer(_ request: String) -> String {
            String(decoding: service.respond(to: ArraySlice(Array(request.utf8))).bytes, as: UTF8.self)
        }
        #expect(answer("GET //latest//meta-data/ami-id HTTP/1.1\r\n\r\n").hasSuffix("ami-kata"))
        #expect(answer("GET http://169.254.169.254/latest/meta-data/ami-id HTTP/1.1\r\n\r\n").hasSuffix("ami-kata"))
        // imds_compat: IMDS form even when JSON is accepted.
        #expect(answer("GET /latest/meta-data HTTP/1.1\r\nAccept: application/json\r\n\r\n").hasSuffix("ami-id\nlocal-ipv4"))
    }
}
