import Glibc
import Testing
@testable import Devices
@testable import VMM

/// The vsock packet header and the hybrid handshake line, byte by byte.
@Suite struct VsockProtocolTests {
    @Test func headerRoundTripsInLittleEndian() throws {
        let header = VsockPacketHeader(srcCid: 0x0102_0304_0506_0708, dstCid: 2, srcPort: 0xAABB_CCDD, dstPort: 1024,
                                       len: 4096, op: .rw, flags: 3, bufAlloc: 262_144, fwdCnt: 77)
        let bytes = header.bytes
        #expect(bytes.count == 44)
        #expect(Array(bytes[0..<8]) == [8, 7, 6, 5, 4, 3, 2, 1])
        #expect(Array(bytes[16..<20]) == [0xDD, 0xCC, 0xBB, 0xAA])
        #expect(Array(bytes[28..<32]) == [1, 0, 5, 0])  // type STREAM, op RW
        #expect(VsockPacketHeader(bytes) == header)
        #expect(VsockPacketHeader(Array(bytes.prefix(43))) == nil)
        #expect(VsockPacketHeader(bytes)?.knownOp == .rw)
    }

    @Test func connectLineParsing() {
        func parse(_ s: String) -> VsockConnectCommand.Parse { VsockConnectCommand.parse(Array(s.utf8)) }
        #expect(parse("CONNECT 52\n") == .connect(port: 52, length: 11))
        #expect(parse("CONNECT 52\r\n") == .connect(port: 52, length: 12))
        #expect(parse("CONNECT 4294967295\nmore data") == .connect(port: UInt32.max, length: 19))
        #expect(parse("CONNECT 4294967296\n") == .invalid)
        #expect(parse("CONNECT 99999999999\n") == .invalid)
        #expect(parse("CONN") == .incomplete)
        #expect(parse("CONNECT 12") == .incomplete)
        #expect(parse("") == .incomplete)
        #expect(parse("connect 52\n") == .invalid)
        #expect(parse("GET / HTTP/1.1") == .invalid)
        #expect(parse("CONNECT \n") == .invalid)
        #expect(parse("CONNECT -1\n") == .invalid)
        #expect(parse("CONNECT 1 2\n") == .invalid)
        #expect(parse("CONNECT 0000000000000000000000001") == .invalid)  // 32 bytes and no newline
        #expect(VsockConnectCommand.okLine(port: 1 << 30) == Array("OK 1073741824\n".utf8))
    }

    @Test func creditArithmeticWraps() {
        let c = VsockConnection(key: VsockConnectionKey(localPort: 1, peerPort: 2), fd: -1, hostInitiated: false,
                                state: .established, bufAlloc: 1000)
        c.updatePeerCredit(bufAlloc: 100, fwdCnt: UInt32.max - 10)
        c.rxCnt = UInt32.max - 10
        #expect(c.peerCredit == 100)
        c.rxCnt &+= 60  // wraps past zero
        #expect(c.peerCredit == 40)
        c.rxCnt &+= 60  // more than the guest allowed (it shrank its buffer, say)
        #expect(c.peerCredit == 0)
        c.forwarded(499)
        #expect(!c.needsCreditUpdate)
        c.forwarded(1)
        #expect(c.needsCreditUpdate)
    }
}
