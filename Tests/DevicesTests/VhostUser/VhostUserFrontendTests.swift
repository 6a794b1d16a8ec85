import Foundation
import Glibc
import Testing
import TestSupport
import VMM
@testable import Devices

/// The frontend against a backend that misbehaves: every failure is a `VhostUserError`
/// within one reply timeout, and nothing it announces is believed before it is bounded.
@Suite struct VhostUserFrontendTests {
    static let timeoutMs: Int32 = 300

    /// Runs `body` against `backend` and returns the requests the backend saw.
    func connect(_ backend: HostileVhostUserBackend) throws(VhostUserError) -> VhostUserFrontend {
        try VhostUserFrontend(connectingTo: backend.path, timeoutMs: Self.timeoutMs)
    }

    @Test func introducesItselfAsTheSpecSays() throws {
        let backend = try HostileVhostUserBackend(HostileVhostUserBackend.wellBehaved(queues: 3))
        do {
            let frontend = try connect(backend)
            #expect(frontend.backendFeatures == VirtioFeature.version1 | VhostUserFeature.protocolFeatures)
            #expect(frontend.protocolFeatures == VhostUserFeature.replyAck | VhostUserFeature.multiQueue)
            #expect(frontend.maxQueues == 3)
            try frontend.setFeatures(VirtioFeature.version1)
            try frontend.stopQueue(0)
        }
        let seen = backend.finish().compactMap(VhostUserRequest.init(rawValue:))
        #expect(seen == [.setOwner, .getFeatures, .getProtocolFeatures, .setProtocolFeatures, .getQueueNum, .setFeatures, .getVringBase])
    }

    @Test func aRefusalIsAnErrorNamingTheRequest() throws {
        let wellBehaved = HostileVhostUserBackend.wellBehaved()
        let backend = try HostileVhostUserBackend { request, flags, payload in
            request == VhostUserRequest.setFeatures.rawValue
                ? .bytes(HostileVhostUserBackend.reply(request, VhostUserMessage.u64(1))) : wellBehaved(request, flags, payload)
        }
        do {
            let frontend = try connect(backend)
            #expect(throws: VhostUserError.refused(.setFeatures, status: 1)) { try frontend.setFeatures(VirtioFeature.version1) }
        }
        _ = backend.finish()
    }

    @Test func aReplyAnnouncingAGigabyteIsRefusedWithoutReadingIt() throws {
        var header: [UInt8] = []
        header.appendLE(VhostUserRequest.getFeatures.rawValue)
        header.appendLE(UInt32(0x5))
        header.appendLE(UInt32(1 << 30))
        let backend = try HostileVhostUserBackend { request, _, _ in
            request == VhostUserRequest.getFeatures.rawValue ? .bytes(header) : .nothing
        }
        #expect(throws: VhostUserError.malformedReply("a payload of 1073741824 bytes announced")) { _ = try connect(backend) }
        _ = backend.finish()
    }

    @Test func aReplyToAnotherRequestOrWithoutTheReplyFlagIsRefused() throws {
        for bad in [HostileVhostUserBackend.reply(VhostUserRequest.getQueueNum.rawValue, VhostUserMessage.u64(1)),
                    HostileVhostUserBackend.reply(VhostUserRequest.getFeatures.rawValue, VhostUserMessage.u64(1), flags: 0x1),
                    HostileVhostUserBackend.reply(VhostUserRequest.getFeatures.rawValue, [1, 2, 3])] {
            let backend = try HostileVhostUserBackend { request, _, _ in
                request == VhostUserRequest.getFeatures.rawValue ? .bytes(bad) : .nothing
            }
            #expect(throws: VhostUserError.self) { _ = try connect(backend) }
            _ = backend.finish()
        }
    }

    /// A backend that hangs costs one timeout; one that trickles a byte at a time costs
    /// no more (the deadline covers the whole reply, not each read).
    @Test func aSilentOrTricklingBackendTimesOutWithinOneTimeout() throws {
        let full = HostileVhostUserBackend.reply(VhostUserRequest.getFeatures.rawValue, VhostUserMessage.u64(VirtioFeature.version1))
        for answer in [HostileVhostUserBackend.Answer.nothing, .trickle(full, intervalMs: 100)] {
            let backend = try HostileVhostUserBackend { request, _, _ in
                request == VhostUserRequest.getFeatures.rawValue ? answer : .nothing
            }
            let start = Date()
            #expect(throws: VhostUserError.timedOut(.getFeatures)) { _ = try connect(backend) }
            let elapsed = Date().timeIntervalSince(start)
            #expect(elapsed >= Double(Self.timeoutMs) / 1000 * 0.9)
            #expect(elapsed < Double(Self.timeoutMs) / 1000 * 3, "one timeout, not one per byte (20 bytes at 100 ms)")
            _ = backend.finish()
        }
    }

    @Test func aBackendThatHangsUpIsClosed() throws {
        let backend = try HostileVhostUserBackend { _, _, _ in .hangUp }
        #expect(throws: VhostUserError.closed(during: "GET_FEATURES")) { _ = try connect(backend) }
        _ = backend.finish()
    }

    @Test func aMissingSocketIsAnErrorNamingIt() throws {
        let path = try Fixtures.scratchDirectory("vhost-user") + "/nobody.sock"
        do {
            _ = try VhostUserFrontend(connectingTo: path, timeoutMs: Self.timeoutMs)
            Issue.record("connected to a socket that does not exist")
        } catch {
            #expect(error.description.contains(path))
            #expect(error.description.contains("No such file"))
        }
    }

    /// virtio-fs needs VERSION_1 and as many queues as it offers the driver.
    @Test func virtioFsRefusesABackendThatCannotServeIt() throws {
        let loop = try EventLoop()
        for (features, queues, requestQueues) in [(VhostUserFeature.protocolFeatures, UInt64(2), 1), (VirtioFeature.version1 | VhostUserFeature.protocolFeatures, 2, 2)] {
            let backend = try HostileVhostUserBackend(HostileVhostUserBackend.wellBehaved(features: features, queues: queues))
            #expect(throws: VhostUserError.self) {
                _ = try VirtioFs(tag: "t", socketPath: backend.path, requestQueues: requestQueues, queueSize: 128,
                                 loop: loop, logger: quietLogger(), replyTimeoutMs: Self.timeoutMs)
            }
            _ = backend.finish()
        }
    }
}
