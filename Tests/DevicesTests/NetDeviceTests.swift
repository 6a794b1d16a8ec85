import CLinux
import Foundation
import Glibc
import Logging
import TestSupport
import Testing
@testable import Devices
@testable import VMM

/// virtio-net against a real tap inside a network namespace the test creates: frames the
/// driver transmits come out of the tap, frames sent into the tap land in the driver's RX
/// buffers with the right vnet header, and offloads follow the negotiated features.
@Suite(.serialized) struct NetDeviceTests {
    static let guestMac: [UInt8] = [0x02, 0x4B, 0x41, 0x54, 0x41, 0x01]
    static let hostAddress = "10.199.0.1"
    static let guestAddress = "10.199.0.2"

    /// A namespace with a tap, a raw packet socket on it and a UDP socket, all created inside.
    final class Namespace {
        let name: String
        let tap: Tap
        let packet: Int32
        let udp: Int32

        init(tapName: String) throws {
            name = "ktn\(getpid())\(UInt32.random(in: 0...99999))"
            _ = try Command.run("/usr/sbin/ip", ["netns", "add", name])
            // No IPv6 chatter (router solicitations, MLD) on the test's link.
            _ = try Command.run("/usr/sbin/ip", ["netns", "exec", name, "sysctl", "-qw",
                                                 "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
            let target = open("/var/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
            let home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
            defer { close(target); close(home) }
            guard target >= 0, home >= 0, clinux_setns(target, Int32(CLONE_NEWNET)) == 0 else {
                throw Fixtures.FixtureError("cannot enter network namespace \(name)")
            }
            defer { _ = clinux_setns(home, Int32(CLONE_NEWNET)) }
            tap = try Tap(name: tapName)
            for args in [["link", "set", tapName, "up"], ["addr", "add", "\(NetDeviceTests.hostAddress)/24", "dev", tapName],
                         ["neigh", "add", NetDeviceTests.guestAddress, "lladdr", "02:4b:41:54:41:01", "dev", tapName]] {
                let r = try Command.run("/usr/sbin/ip", ["netns", "exec", name, "ip"] + args)
                guard r.status == 0 else { throw Fixtures.FixtureError("ip \(args): \(r.stderr)") }
            }
            let packetSocket = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), Int32(UInt16(0x0003).bigEndian))  // ETH_P_ALL
            var address = sockaddr_ll()
            address.sll_family = UInt16(AF_PACKET)
            address.sll_protocol = UInt16(0x0003).bigEndian
            address.sll_ifindex = Int32(if_nametoindex(tapName))
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(packetSocket, $0, socklen_t(MemoryLayout<sockaddr_ll>.size)) }
            }
            packet = packetSocket
            udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(packet, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit {
            close(packet)
            close(udp)
            _ = try? Command.run("/usr/sbin/ip", ["netns", "del", name])
        }

        /// The next frame the tap transmitted towards the host side that matches `predicate`.
        func receive(where predicate: ([UInt8]) -> Bool) -> [UInt8]? {
            var buffer = [UInt8](repeating: 0, count: 2048)
            for _ in 0..<50 {
                let n = recv(packet, &buffer, buffer.count, 0)
                if n <= 0 { return nil }
                let frame = Array(buffer[0..<n])
                if predicate(frame) { return frame }
            }
            return nil
        }

        func sendFrame(_ frame: [UInt8]) -> Bool {
            send(packet, frame, frame.count, 0) == frame.count
        }

        func sendUdp(_ payload: [UInt8], port: UInt16) -> Bool {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            inet_pton(AF_INET, NetDeviceTests.guestAddress, &address.sin_addr)
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(udp, payload, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            } == payload.count
        }
    }

    static var available: Bool {
        getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/net/tun")
            && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip")
    }

    static func frame(payload: [UInt8], destination: [UInt8] = [0x02, 0, 0, 0, 0, 0x99]) -> [UInt8] {
        destination + guestMac + [0x88, 0xB5] + payload  // local experimental ethertype
    }

    func setUp(_ tapName: String, features: UInt64? = nil) throws -> (Namespace, VirtioNet, VirtioTestDriver, EventLoop) {
        let ns = try Namespace(tapName: tapName)
        let loop = try EventLoop()
        let net = try VirtioNet(tap: ns.tap, mac: Self.guestMac, loop: loop, logger: quietLogger())
        let driver = try VirtioTestDriver(device: net, eventLoop: false)
        try driver.initialize(features: features)
        return (ns, net, driver, loop)
    }

    /// Frames delivered so far, reassembled from used RX buffers by num_buffers.
    final class Receiver {
        var buffers: [UInt32: UInt64] = [:]
        var frames: [[UInt8]] = []
        private var partial: [UInt8] = []
        private var remaining = 0

        func post(_ d: VirtioTestDriver, count: Int, size: UInt32) throws {
            for _ in 0..<count {
                let b = d.allocate(Int(size))
                let head = try d.add([.writable(b, size)], queue: 0)
                buffers[UInt32(head)] = b
            }
            d.notify(0)
        }

        func collect(_ d: VirtioTestDriver) {
            for entry in d.getUsed(0) {
                guard let address = buffers[entry.id] else { continue }
                let bytes = d.bytes(address, Int(entry.len))
                if remaining == 0 {
                    remaining = Int(ByteReader(bytes).u16(10) ?? 1)
                    partial = []
                }
                partial += bytes
                remaining -= 1
                if remaining == 0 { frames.append(partial) }
            }
        }

        /// The first delivered frame (vnet header + ethernet) whose ethernet part matches.
        func frame(where predicate: ([UInt8]) -> Bool) -> [UInt8]? {
            frames.first { $0.count > 12 && predicate(Array($0[12...])) }
        }
    }

    func pump(_ loop: EventLoop, _ driver: VirtioTestDriver, until done: () -> Bool) {
        for _ in 0..<200 where !done() {
            loop.runOnce(timeoutMs: 10)
            driver.runDevice()
        }
    }

    @Test func transmittedFramesComeOutOfTheTap() throws {
        guard Self.available else { try Fixtures.missing("root, /dev/net/tun and ip") }
        let (ns, net, d, _) = try setUp("ktx0")
        #expect(d.readConfig(0, width: 6) == Self.guestMac)
        #expect(ByteReader(d.readConfig(6, width: 2)).u16(0) == 1)  // link up
        for (i, split) in [false, true].enumerated() {
            let payload = (0..<200).map { UInt8(truncatingIfNeeded: $0 + i * 50) }
            let frame = Self.frame(payload: payload)
            let header = d.allocate(12)
            d.fill(header, 12, with: 0)
            let body = d.allocate(frame.count)
            try d.memory.write(frame, at: body)
            if split {  // header, then the frame in two pieces
                try d.add([.readable(header, 12), .readable(body, 20), .readable(body + 20, UInt32(frame.count - 20))], queue: 1)
            } else {  // header and frame in one buffer
                let one = d.allocate(12 + frame.count)
                try d.memory.write([UInt8](repeating: 0, count: 12) + frame, at: one)
                try d.add([.readable(one, UInt32(12 + frame.count))], queue: 1)
            }
            d.notify(1)
            let out = ns.receive { $0.count >= 14 && $0[12] == 0x88 && $0[13] == 0xB5 && Array($0[14...]) == payload }
            #expect(out == frame)
            #expect(d.getUsed(1).map(\.len) == [0])
        }
        #expect(net.counters.txFrames == 2 && net.counters.txDropped == 0)
    }

    @Test func framesIntoTheTapReachRxBuffersEvenWhenBuffersCameLate() throws {
        guard Self.available else { try Fixtures.missing("root, /dev/net/tun and ip") }
        let (ns, net, d, loop) = try setUp("krx0")
        // 1. No RX buffers yet: the frame must wait, not be dropped.
        let first = Self.frame(payload: Array(repeating: 0x42, count: 300), destination: Self.guestMac)
        #expect(ns.sendFrame(first))
        pump(loop, d) { false }
        #expect(net.counters.rxFrames == 0 && net.counters.rxDropped == 0)
        // 2. Mergeable buffers of 256 bytes: the frame spans two of them.
        let rx = Receiver()
        try rx.post(d, count: 32, size: 256)
        pump(loop, d) { rx.collect(d); return rx.frame { $0 == first } != nil }
        let got = try #require(rx.frame { $0 == first })
        #expect(ByteReader(got).u16(10) == 2)  // num_buffers: 12 + 314 bytes over 256-byte buffers
        #expect(net.counters.rxDropped == 0)
    }

    @Test func rxHeaderAndOffloadsFollowTheNegotiatedFeatures() throws {
        guard Self.available else { try Fixtures.missing("root, /dev/net/tun and ip") }
        for offloads in [true, false] {
            let all = VirtioFeature.version1 | VirtioFeature.ringEventIndex | VirtioFeature.ringIndirectDescriptors
                | VirtioNet.featureMac | VirtioNet.featureStatus | VirtioNet.featureMergeableRxBuffers | VirtioNet.featureCsum
            let features = offloads ? all | VirtioNet.featureGuestCsum | VirtioNet.featureGuestTso4 : all
            let (ns, _, d, loop) = try setUp(offloads ? "koff1" : "koff0", features: features)
            let rx = Receiver()
            try rx.post(d, count: 16, size: 2048)
            #expect(ns.sendUdp(Array("hello guest".utf8), port: 4242))
            let isOurs: ([UInt8]) -> Bool = { $0.count > 14 && $0[12] == 0x08 && $0[13] == 0x00 && $0.suffix(11) == ArraySlice("hello guest".utf8) }
            pump(loop, d) { rx.collect(d); return rx.frame(where: isOurs) != nil }
            let received = try #require(rx.frame(where: isOurs))
            let header = ByteReader(received)
            #expect(header.u16(10) == 1)  // num_buffers
            let flags = received[0]
            // With GUEST_CSUM the host stack hands over an unchecksummed UDP packet.
            #expect(flags & 1 == (offloads ? 1 : 0), "vnet flags \(flags)")
            if offloads { #expect(header.u16(6) == 14 + 20 && header.u16(8) == 6) }  // csum_start, csum_offset (UDP)
            let ethernet = Array(received[12...])
            #expect(Array(ethernet[0..<6]) == Self.guestMac)
            #expect(ethernet[12] == 0x08 && ethernet[13] == 0x00)  // IPv4
            #expect(Array(ethernet.suffix(11)) == Array("hello guest".utf8))
        }
    }

    /// Frames per second the device moves from the TX ring into the tap (64-byte frames,
    /// header and frame in one descriptor as Linux sends them). Printed, not asserted.
    @Test func transmitRate() throws {
        guard Self.available else { try Fixtures.missing("root, /dev/net/tun and ip") }
        let (_, net, d, _) = try setUp("krate0")
        let frame = [UInt8](repeating: 0, count: 12) + Self.frame(payload: [UInt8](repeating: 0x55, count: 50))
        let buffer = d.allocate(frame.count)
        try d.memory.write(frame, at: buffer)
        let batch = 128, batches = 80
        let clock = ContinuousClock()
        let elapsed = try clock.measure {
            for _ in 0..<batches {
                for _ in 0..<batch { try d.add([.readable(buffer, UInt32(frame.count))], queue: 1) }
                d.notify(1)
                _ = d.getUsed(1)
            }
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(String(format: "virtio-net TX: %.0f frames/s (%d frames of %d bytes)", Double(batch * batches) / seconds, batch * batches, frame.count - 12))
        #expect(net.counters.txFrames + net.counters.txDropped == UInt64(batch * batches))
    }

    /// Both directions throttled to one frame per 150 ms, with the transport on the tap's
    /// event loop as in the VMM: frames wait (on the ring, or read from the tap and kept),
    /// none is dropped, and each limiter's timer resumes its queue. Lower bounds only.
    @Test func rateLimitersHoldFramesBackWithoutDroppingAny() throws {
        guard Self.available else { try Fixtures.missing("root, /dev/net/tun and ip") }
        let ns = try Namespace(tapName: "klim0")
        let loop = try EventLoop()
        let oneFrame = RateLimiterConfig(ops: TokenBucketConfig(size: 1, refillTimeMs: 150))
        let net = try VirtioNet(tap: ns.tap, mac: Self.guestMac, rxRateLimiter: oneFrame, txRateLimiter: oneFrame,
                                loop: loop, logger: quietLogger())
        let d = try VirtioTestDriver(device: net, loop: loop)
        try d.initialize()
        let clock = ContinuousClock()
        func waitFor(_ done: () -> Bool) {
            let deadline = clock.now + .seconds(10)
            while !done() && clock.now < deadline { loop.runOnce(timeoutMs: 20) }
        }
        // TX: four frames in one kick; the first goes at once, each other after a refill.
        let txStart = clock.now
        for i in 0..<4 {
            let frame = [UInt8](repeating: 0, count: 12) + Self.frame(payload: [UInt8](repeating: UInt8(i), count: 60))
            let buffer = d.allocate(frame.count)
            try d.memory.write(frame, at: buffer)
            try d.add([.readable(buffer, UInt32(frame.count))], queue: 1)
        }
        d.notify(1)
        #expect(net.counters.txFrames == 1)
        var txUsed = d.getUsed(1).count
        waitFor { txUsed += d.getUsed(1).count; return txUsed == 4 }
        let txSeconds = Double((clock.now - txStart).components.attoseconds) / 1e18 + Double((clock.now - txStart).components.seconds)
        #expect(txUsed == 4 && net.counters.txFrames == 4 && net.counters.txDropped == 0)
        #expect(txSeconds >= 0.4, "4 frames at one per 150 ms took \(txSeconds) s")
        for i in 0..<4 {
            #expect(ns.receive { $0.count > 14 && $0[12] == 0x88 && $0[14] == UInt8(i) } != nil, "frame \(i) reached the tap")
        }
        // RX: three frames into the tap; they reach the guest one per refill.
        let rx = Receiver()
        try rx.post(d, count: 16, size: 2048)
        let rxStart = clock.now
        for i in 0..<3 {
            #expect(ns.sendFrame(Self.frame(payload: [UInt8](repeating: 0xA0 + UInt8(i), count: 60), destination: Self.guestMac)))
        }
        waitFor { rx.collect(d); return rx.frames.filter { $0.count > 26 && $0[24] == 0x88 }.count == 3 }
        let rxSeconds = Double((clock.now - rxStart).components.attoseconds) / 1e18 + Double((clock.now - rxStart).components.seconds)
        let ours = rx.frames.filter { $0.count > 26 && $0[24] == 0x88 }.map { $0[26] }
        #expect(ours == [0xA0, 0xA1, 0xA2])
        #expect(rxSeconds >= 0.25, "3 frames at one per 150 ms took \(rxSeconds) s")
        #expect(net.counters.rxDropped == 0)
        #expect(net.counters.rxRateLimiter.throttled >= 2 && net.counters.txRateLimiter.throttled >= 3)
        print(String(format: "virtio-net, one frame per 150 ms: 4 TX frames in %.3f s, 3 RX frames in %.3f s", txSeconds, rxSeconds))
    }

    @Test func tapOpenErrorsAreClear() {
        #expect(throws: Tap.OpenError.badName("this-name-is-far-too-long")) { try Tap(name: "this-name-is-far-too-long") }
    }
}
