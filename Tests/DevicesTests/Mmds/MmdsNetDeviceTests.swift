import Foundation
import Glibc
import TestSupport
import Testing
@testable import Devices
@testable import VMM

extension NetDeviceTests {
    /// virtio-net with the metadata service on it, through real rings and a real tap: the
    /// guest's ARP and TCP for the MMDS address are answered on its RX queue and never reach
    /// the tap, whatever the driver's descriptor layout, while other traffic still does.
    @Test func framesToTheMetadataServiceAreAnsweredAndNeverReachTheTap() throws {
        guard Self.available else { try Fixtures.missing("root, /dev/net/tun and ip") }
        let ns = try Namespace(tapName: "kmmds0")
        let loop = try EventLoop()
        let service = MmdsService(config: MmdsConfig(networkInterfaces: ["eth0"]), source: MmdsNetworkStackTests.store)
        let net = try VirtioNet(tap: ns.tap, mac: Self.guestMac, mmds: service, loop: loop, logger: quietLogger())
        let d = try VirtioTestDriver(device: net, eventLoop: false)
        try d.initialize(features: nil)
        let rx = Receiver()
        try rx.post(d, count: 32, size: 2048)

        func transmit(_ frame: [UInt8], split: Bool) throws {
            let header = d.allocate(12)
            d.fill(header, 12, with: 0)
            let body = d.allocate(frame.count)
            try d.memory.write(frame, at: body)
            if split {
                try d.add([.readable(header, 12), .readable(body, 10), .readable(body + 10, UInt32(frame.count - 10))], queue: 1)
            } else {
                try d.add([.readable(header, 12), .readable(body, UInt32(frame.count))], queue: 1)
            }
            d.notify(1)
        }
        func arp(for ip: UInt32) -> [UInt8] { MmdsNetworkStackTests.arpRequest(for: ip, from: 0x0A_C7_00_02) }
        let isArpReply: ([UInt8]) -> Bool = { $0.count >= 42 && $0[12] == 0x08 && $0[13] == 0x06 && $0[21] == 2 }

        // ARP for the service, the frame split across descriptors: answered, not forwarded.
        try transmit(arp(for: MmdsConfig.defaultAddress), split: true)
        pump(loop, d) { rx.collect(d); return rx.frame(where: isArpReply) != nil }
        #expect(rx.frame(where: isArpReply) != nil)
        // A SYN, then a GET: the answer arrives in the RX ring.
        var c = MmdsNetworkStackTests.GuestConnection(port: 45_000)
        try transmit(c.segment(.syn, mss: 1460), split: false)
        let isSynAck: ([UInt8]) -> Bool = { $0.count > 47 && $0[23] == 6 && $0[47] == 0x12 }
        pump(loop, d) { rx.collect(d); return rx.frame(where: isSynAck) != nil }
        let synAck = try #require(rx.frame(where: isSynAck))
        c.ack = (Array(synAck[12...]).withUnsafeBytes { NetworkHeaders.u32($0, 38) }) &+ 1
        try transmit(c.segment(.ack), split: false)
        try transmit(c.segment([.ack, .psh], data: Array("GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n".utf8)), split: true)
        let isAnswer: ([UInt8]) -> Bool = { String(decoding: $0, as: UTF8.self).contains("ami-kata") }
        pump(loop, d) { rx.collect(d); return rx.frame(where: isAnswer) != nil }
        #expect(rx.frame(where: isAnswer) != nil)
        #expect(net.counters.mmds?.requests == 1)

        // ARP for another address goes to the tap; none of the service's frames did.
        try transmit(arp(for: 0x0A_C7_00_01), split: false)
        pump(loop, d) { net.counters.txFrames == 1 }
        let seen = ns.receive { $0.count >= 42 && $0[12] == 0x08 && $0[13] == 0x06 }
        #expect(seen.map { Array($0[38..<42]) } == [10, 199, 0, 1])
        #expect(net.counters.txFrames == 1, "only the one frame for another address reached the tap")
    }
}
