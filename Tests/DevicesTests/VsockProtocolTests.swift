import Glibc
import Testing
@testable import Devices
@testable import VMM

/// The vsock packet header and credit accounting, byte by byte (the hybrid handshake
/// line: HybridVsockLineTests).
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
