import Glibc
import LinuxSupport
import TestSupport
@testable import Devices

/// A vhost-user backend that answers each request as a test says, down to the bytes:
/// well, wrongly, slowly, or not at all. The real backend (virtiofsd) is what
/// `VirtioFsTests` talks to; this one plays what virtiofsd never does on purpose.
final class HostileVhostUserBackend: @unchecked Sendable {  // `received` is written by the backend thread only until join()
    enum Answer {
        /// These bytes, as they are (a header and a payload, or garbage).
        case bytes([UInt8])
        /// The same bytes, one every `intervalMs`.
        case trickle([UInt8], intervalMs: Int32)
        case nothing
        case hangUp
    }

    let path: String
    private let listener: Int32
    private var thread: PosixThread?
    /// The requests the backend saw, in order.
    private(set) var received: [UInt32] = []

    /// A backend that knows the protocol: version 1 with protocol features, REPLY_ACK and
    /// multiqueue with `queues` queues, and every acknowledged request accepted.
    static func wellBehaved(features: UInt64 = VirtioFeature.version1 | VhostUserFeature.protocolFeatures,
                            queues: UInt64 = 2) -> (UInt32, UInt32, [UInt8]) -> Answer {
        { request, flags, _ in
            switch VhostUserRequest(rawValue: request) {
            case .getFeatures: return .bytes(reply(request, VhostUserMessage.u64(features)))
            case .getProtocolFeatures: return .bytes(reply(request, VhostUserMessage.u64(VhostUserFeature.replyAck | VhostUserFeature.multiQueue)))
            case .getQueueNum: return .bytes(reply(request, VhostUserMessage.u64(queues)))
            case .getVringBase: return .bytes(reply(request, VhostUserMessage.vringState(index: 0, num: 0)))
            default: return flags & VhostUserMessage.needReplyFlag != 0 ? .bytes(reply(request, VhostUserMessage.u64(0))) : .nothing
            }
        }
    }

    static func reply(_ request: UInt32, _ payload: [UInt8], flags: UInt32 = 0x5) -> [UInt8] {
        VhostUserMessage(request: request, flags: flags, payload: payload).bytes
    }

    init(_ answer: @escaping (UInt32, UInt32, [UInt8]) -> Answer) throws {
        path = try Fixtures.scratchDirectory("vhost-user") + "/backend.sock"
        listener = try HybridVsockStream.listen(path)
        let listener = listener
        thread = try PosixThread.start { [self] in
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            defer { close(connection) }
            while let (request, flags, payload) = Self.readMessage(connection) {
                received.append(request)
                switch answer(request, flags, payload) {
                case .bytes(let bytes): _ = Self.send(connection, bytes)
                case .trickle(let bytes, let interval):
                    for byte in bytes {
                        _ = poll(nil, 0, interval)
                        guard Self.send(connection, [byte]) else { return }
                    }
                case .nothing: break
                case .hangUp: return
                }
            }
        }
    }

    /// Waits for the backend's thread (it ends when the frontend closes its end).
    func finish() -> [UInt32] {
        thread?.join()
        thread = nil
        close(listener)
        return received
    }

    /// Without SIGPIPE: the frontend may be gone already.
    private static func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// One request: the header (with the descriptors that came with it, closed at once),
    /// then its payload.
    private static func readMessage(_ fd: Int32) -> (UInt32, UInt32, [UInt8])? {
        guard let (header, fds) = try? DescriptorPassing.receive(on: fd, maxPayload: VhostUserMessage.headerSize),
              header.count == VhostUserMessage.headerSize else { return nil }
        for descriptor in fds { close(descriptor) }
        let size = Int(header.loadLE(UInt32.self, at: 8))
        var payload: [UInt8] = []
        while payload.count < size {
            var chunk = [UInt8](repeating: 0, count: size - payload.count)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return nil }
            payload += chunk[0..<n]
        }
        return (header.loadLE(UInt32.self, at: 0), header.loadLE(UInt32.self, at: 4), payload)
    }
}
