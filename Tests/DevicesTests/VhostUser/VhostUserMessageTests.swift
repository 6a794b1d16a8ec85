import Testing
@testable import Devices

/// The codec, without a socket: what goes out is the spec's layout, and a reply is
/// judged (size bounded first, then request, flags and payload size) before it is used.
@Suite struct VhostUserMessageTests {
    @Test func encodesTheHeaderLittleEndianBeforeThePayload() {
        let message = VhostUserMessage(.setFeatures, payload: VhostUserMessage.u64(0x0102_0304_0506_0708), needReply: true)
        #expect(message.bytes == [2, 0, 0, 0,  0x09, 0, 0, 0,  8, 0, 0, 0,  8, 7, 6, 5, 4, 3, 2, 1])
        #expect(VhostUserMessage(.setOwner).bytes == [3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func aHeaderRoundTrips() throws {
        let message = VhostUserMessage(.getVringBase, payload: VhostUserMessage.vringState(index: 3, num: 77))
        let parsed = try VhostUserMessage.parseHeader(Array(message.bytes.prefix(VhostUserMessage.headerSize)))
        #expect(parsed.request == VhostUserRequest.getVringBase.rawValue)
        #expect(parsed.flags == 1)
        #expect(parsed.size == 8)
        #expect(Array(message.bytes.dropFirst(12)) == [3, 0, 0, 0, 77, 0, 0, 0])
    }

    @Test func payloadsHaveTheSpecsLayout() {
        let address = VhostUserMessage.vringAddress(index: 1, descriptors: 0x1000, used: 0x3000, available: 0x2000)
        #expect(address.count == 40)
        #expect(address.loadLE(UInt32.self, at: 0) == 1)
        #expect(address.loadLE(UInt64.self, at: 8) == 0x1000)   // descriptor table
        #expect(address.loadLE(UInt64.self, at: 16) == 0x3000)  // used ring
        #expect(address.loadLE(UInt64.self, at: 24) == 0x2000)  // available ring
        let table = VhostUserMessage.memoryTable([
            .init(guestAddress: 0, size: 0x1000, userAddress: 0x7f00_0000_0000, mmapOffset: 0),
            .init(guestAddress: 0x1_0000_0000, size: 0x2000, userAddress: 0x7f10_0000_0000, mmapOffset: 0),
        ])
        #expect(table.count == 8 + 2 * 32)
        #expect(table.loadLE(UInt32.self, at: 0) == 2)
        #expect(table.loadLE(UInt64.self, at: 8 + 32) == 0x1_0000_0000)
        #expect(table.loadLE(UInt64.self, at: 8 + 32 + 16) == 0x7f10_0000_0000)
        #expect(VhostUserMessage.vringFile(index: 5) == [5, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func aHeaderAnnouncingAHugePayloadIsRefusedBeforeAnyIsRead() throws {
        var header: [UInt8] = []
        header.appendLE(UInt32(1))
        header.appendLE(UInt32(0x5))
        header.appendLE(UInt32(1 << 30))
        #expect(throws: VhostUserError.malformedReply("a payload of 1073741824 bytes announced")) {
            try VhostUserMessage.parseHeader(header)
        }
        #expect(throws: VhostUserError.self) { try VhostUserMessage.parseHeader([1, 0, 0]) }
        var largest = header
        largest.replaceSubrange(8..<12, with: [0, 1, 0, 0])  // 256: the bound itself is allowed
        #expect(try VhostUserMessage.parseHeader(largest).size == 256)
    }

    @Test func aReplyMustAnswerTheRequestWithTheReplyFlagAndTheRightSize() throws {
        let good = VhostUserMessage(request: 1, flags: 0x5, payload: VhostUserMessage.u64(7))
        try good.checkReply(to: .getFeatures, size: 8)
        // Another request's reply, a missing reply flag, another version, a short payload.
        #expect(throws: VhostUserError.self) { try good.checkReply(to: .getProtocolFeatures, size: 8) }
        #expect(throws: VhostUserError.self) {
            try VhostUserMessage(request: 1, flags: 0x1, payload: good.payload).checkReply(to: .getFeatures, size: 8)
        }
        #expect(throws: VhostUserError.self) {
            try VhostUserMessage(request: 1, flags: 0x6, payload: good.payload).checkReply(to: .getFeatures, size: 8)
        }
        #expect(throws: VhostUserError.self) {
            try VhostUserMessage(request: 1, flags: 0x5, payload: [1, 2, 3, 4]).checkReply(to: .getFeatures, size: 8)
        }
    }
}
