/// The Ethernet, ARP, IPv4 and TCP headers the metadata service's network stack reads and
/// writes, over a guest frame copied out of its ring. Every read is bounds-checked against
/// the frame: a short or lying header is a frame that is not parsed, never a trap.
enum NetworkHeaders {
    static let ethernetLength = 14
    static let etherTypeIPv4: UInt16 = 0x0800
    static let etherTypeArp: UInt16 = 0x0806
    static let arpLength = 28
    static let ipv4MinimumLength = 20
    static let protocolTcp: UInt8 = 6
    static let tcpMinimumLength = 20

    /// A 48-bit MAC address in the low bits (no array, so a connection stays a value).
    typealias Mac = UInt64

    static func u16(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt16 {
        UInt16(b[at]) << 8 | UInt16(b[at + 1])
    }

    static func u32(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }

    static func mac(_ b: UnsafeRawBufferPointer, _ at: Int) -> Mac {
        var value: Mac = 0
        for i in 0..<6 { value = value << 8 | Mac(b[at + i]) }
        return value
    }

    static func put16(_ b: UnsafeMutableRawBufferPointer, _ at: Int, _ value: UInt16) {
        b[at] = UInt8(truncatingIfNeeded: value >> 8)
        b[at + 1] = UInt8(truncatingIfNeeded: value)
    }

    static func put32(_ b: UnsafeMutableRawBufferPointer, _ at: Int, _ value: UInt32) {
        for i in 0..<4 { b[at + i] = UInt8(truncatingIfNeeded: value >> (24 - 8 * i)) }
    }

    static func putMac(_ b: UnsafeMutableRawBufferPointer, _ at: Int, _ value: Mac) {
        for i in 0..<6 { b[at + i] = UInt8(truncatingIfNeeded: value >> (40 - 8 * i)) }
    }

    /// The ones' complement sum of RFC 1071, folded later; `initial` carries a pseudo-header.
    static func sum(_ b: UnsafeRawBufferPointer, from start: Int, count: Int, initial: UInt32 = 0) -> UInt32 {
        var total = UInt64(initial)
        var i = start
        let end = start + count
        while i + 1 < end {
            total += UInt64(b[i]) << 8 | UInt64(b[i + 1])
            i += 2
        }
        if i < end { total += UInt64(b[i]) << 8 }
        while total > 0xFFFF { total = (total & 0xFFFF) + (total >> 16) }
        return UInt32(total)
    }

    static func fold(_ sum: UInt32) -> UInt16 {
        var s = sum
        while s > 0xFFFF { s = (s & 0xFFFF) + (s >> 16) }
        return ~UInt16(s)
    }

    static func pseudoHeaderSum(source: UInt32, destination: UInt32, tcpLength: Int) -> UInt32 {
        (source >> 16) + (source & 0xFFFF) + (destination >> 16) + (destination & 0xFFFF)
            + UInt32(protocolTcp) + UInt32(tcpLength)
    }

    /// An ARP request (Ethernet, IPv4) as it arrived.
    struct ArpRequest {
        var senderMac: Mac
        var senderIp: UInt32
        var targetIp: UInt32
    }

    /// The ARP payload of a frame whose EtherType said ARP, if it is a well-formed request.
    static func arpRequest(_ frame: UnsafeRawBufferPointer) -> ArpRequest? {
        let a = ethernetLength
        guard frame.count >= a + arpLength,
              u16(frame, a) == 1, u16(frame, a + 2) == etherTypeIPv4,  // htype Ethernet, ptype IPv4
              frame[a + 4] == 6, frame[a + 5] == 4, u16(frame, a + 6) == 1  // lengths, op request
        else { return nil }
        return ArpRequest(senderMac: mac(frame, a + 8), senderIp: u32(frame, a + 14), targetIp: u32(frame, a + 24))
    }

    /// An IPv4 packet's addresses and where its payload lies in the frame.
    struct IPv4Packet {
        var source: UInt32
        var destination: UInt32
        var proto: UInt8
        var payloadOffset: Int
        var payloadLength: Int
    }

    /// The IPv4 header of a frame whose EtherType said IPv4. Nil when it is malformed,
    /// fragmented (the stack keeps no reassembly state) or its header checksum is wrong.
    static func ipv4(_ frame: UnsafeRawBufferPointer) -> IPv4Packet? {
        let i = ethernetLength
        guard frame.count >= i + ipv4MinimumLength, frame[i] >> 4 == 4 else { return nil }
        let headerLength = Int(frame[i] & 0x0F) * 4
        let totalLength = Int(u16(frame, i + 2))
        guard headerLength >= ipv4MinimumLength, totalLength >= headerLength, totalLength <= frame.count - i else { return nil }
        let fragment = u16(frame, i + 6)
        guard fragment & 0x3FFF == 0 else { return nil }  // MF set or an offset
        guard fold(sum(frame, from: i, count: headerLength)) == 0 else { return nil }
        return IPv4Packet(source: u32(frame, i + 12), destination: u32(frame, i + 16), proto: frame[i + 9],
                          payloadOffset: i + headerLength, payloadLength: totalLength - headerLength)
    }

    struct TcpFlags: OptionSet {
        let rawValue: UInt8
        static let fin = TcpFlags(rawValue: 0x01)
        static let syn = TcpFlags(rawValue: 0x02)
        static let rst = TcpFlags(rawValue: 0x04)
        static let psh = TcpFlags(rawValue: 0x08)
        static let ack = TcpFlags(rawValue: 0x10)
    }

    struct TcpSegment {
        var sourcePort: UInt16
        var destinationPort: UInt16
        var seq: UInt32
        var ack: UInt32
        var flags: TcpFlags
        var window: UInt16
        /// The MSS option of a SYN, if it carried one.
        var mss: UInt16?
        var dataOffset: Int
        var dataLength: Int
    }

    /// The TCP segment in an IPv4 packet. `verifyChecksum` is false when the guest left the
    /// checksum to the device (VIRTIO_NET_HDR_F_NEEDS_CSUM): it then holds only the
    /// pseudo-header's sum.
    static func tcp(_ frame: UnsafeRawBufferPointer, _ ip: IPv4Packet, verifyChecksum: Bool) -> TcpSegment? {
        let t = ip.payloadOffset
        guard ip.payloadLength >= tcpMinimumLength else { return nil }
        let headerLength = Int(frame[t + 12] >> 4) * 4
        guard headerLength >= tcpMinimumLength, headerLength <= ip.payloadLength else { return nil }
        if verifyChecksum {
            let pseudo = pseudoHeaderSum(source: ip.source, destination: ip.destination, tcpLength: ip.payloadLength)
            guard fold(sum(frame, from: t, count: ip.payloadLength, initial: pseudo)) == 0 else { return nil }
        }
        var segment = TcpSegment(sourcePort: u16(frame, t), destinationPort: u16(frame, t + 2), seq: u32(frame, t + 4),
                                 ack: u32(frame, t + 8), flags: TcpFlags(rawValue: frame[t + 13] & 0x1F),
                                 window: u16(frame, t + 14), mss: nil,
                                 dataOffset: t + headerLength, dataLength: ip.payloadLength - headerLength)
        // Options: only MSS is read; End ends them, NOP is one byte, the rest carry a length.
        var o = t + tcpMinimumLength
        let end = t + headerLength
        while o < end {
            let kind = frame[o]
            if kind == 0 { break }
            if kind == 1 { o += 1; continue }
            guard o + 1 < end else { break }
            let length = Int(frame[o + 1])
            guard length >= 2, length <= end - o else { break }
            if kind == 2, length == 4 { segment.mss = u16(frame, o + 2) }
            o += length
        }
        return segment
    }

    /// Writes an Ethernet + IPv4 + TCP header (with the MSS option on a SYN) in front of
    /// `dataLength` bytes already at `tcpDataOffset(syn:)`, checksums included. Returns the
    /// frame's length.
    static func writeTcp(_ frame: UnsafeMutableRawBufferPointer, to peerMac: Mac, from ownMac: Mac,
                         source: (ip: UInt32, port: UInt16), destination: (ip: UInt32, port: UInt16),
                         seq: UInt32, ack: UInt32, flags: TcpFlags, window: UInt16, mss: UInt16?, dataLength: Int) -> Int {
        let tcpHeader = mss == nil ? tcpMinimumLength : tcpMinimumLength + 4
        let tcpLength = tcpHeader + dataLength
        let i = ethernetLength
        let t = i + ipv4MinimumLength
        putMac(frame, 0, peerMac)
        putMac(frame, 6, ownMac)
        put16(frame, 12, etherTypeIPv4)
        frame[i] = 0x45
        frame[i + 1] = 0
        put16(frame, i + 2, UInt16(ipv4MinimumLength + tcpLength))
        put32(frame, i + 4, 0x0000_4000)  // id 0, don't fragment
        frame[i + 8] = 64
        frame[i + 9] = protocolTcp
        put16(frame, i + 10, 0)
        put32(frame, i + 12, source.ip)
        put32(frame, i + 16, destination.ip)
        put16(frame, i + 10, fold(sum(UnsafeRawBufferPointer(frame), from: i, count: ipv4MinimumLength)))
        put16(frame, t, source.port)
        put16(frame, t + 2, destination.port)
        put32(frame, t + 4, seq)
        put32(frame, t + 8, ack)
        frame[t + 12] = UInt8(tcpHeader / 4) << 4
        frame[t + 13] = flags.rawValue
        put16(frame, t + 14, window)
        put32(frame, t + 16, 0)  // checksum, urgent pointer
        if let mss {
            frame[t + 20] = 2
            frame[t + 21] = 4
            put16(frame, t + 22, mss)
        }
        let pseudo = pseudoHeaderSum(source: source.ip, destination: destination.ip, tcpLength: tcpLength)
        put16(frame, t + 16, fold(sum(UnsafeRawBufferPointer(frame), from: t, count: tcpLength, initial: pseudo)))
        return t + tcpLength
    }

    /// Where a segment's data goes in a frame built by `writeTcp`.
    static func tcpDataOffset(syn: Bool) -> Int {
        ethernetLength + ipv4MinimumLength + tcpMinimumLength + (syn ? 4 : 0)
    }

    /// An ARP reply: `ownIp` is at `ownMac`. Returns the frame's length.
    static func writeArpReply(_ frame: UnsafeMutableRawBufferPointer, to request: ArpRequest, ownMac: Mac, ownIp: UInt32) -> Int {
        let a = ethernetLength
        putMac(frame, 0, request.senderMac)
        putMac(frame, 6, ownMac)
        put16(frame, 12, etherTypeArp)
        put16(frame, a, 1)
        put16(frame, a + 2, etherTypeIPv4)
        frame[a + 4] = 6
        frame[a + 5] = 4
        put16(frame, a + 6, 2)  // reply
        putMac(frame, a + 8, ownMac)
        put32(frame, a + 14, ownIp)
        putMac(frame, a + 18, request.senderMac)
        put32(frame, a + 24, request.senderIp)
        return a + arpLength
    }
}
