#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One ttrpc frame: the 10-byte header (uint32 big-endian payload length, uint32
/// big-endian stream id, uint8 message type, uint8 flags) and its payload, which is a
/// serialized `Ttrpc_Request` (type 1) or `Ttrpc_Response` (type 2).
public struct TTRPCFrame: Sendable, Equatable {
    public enum MessageType: UInt8, Sendable {
        case request = 1
        case response = 2
    }

    public static let headerSize = 10
    /// The largest payload either side accepts (ttrpc's default, 4 MiB). A longer frame is
    /// skipped and answered with RESOURCE_EXHAUSTED; nothing larger is ever buffered.
    public static let maxPayload = 4 << 20

    public var streamID: UInt32
    public var type: UInt8
    public var flags: UInt8
    public var payload: [UInt8]

    public init(streamID: UInt32, type: MessageType, flags: UInt8 = 0, payload: [UInt8]) {
        self.streamID = streamID
        self.type = type.rawValue
        self.flags = flags
        self.payload = payload
    }

    public init(streamID: UInt32, rawType: UInt8, flags: UInt8, payload: [UInt8]) {
        self.streamID = streamID
        self.type = rawType
        self.flags = flags
        self.payload = payload
    }

    /// Header followed by payload, ready for one write.
    public func encoded() -> [UInt8] {
        var bytes = TTRPCFrame.header(length: UInt32(payload.count), streamID: streamID, type: type, flags: flags)
        bytes.append(contentsOf: payload)
        return bytes
    }

    public static func header(length: UInt32, streamID: UInt32, type: UInt8, flags: UInt8) -> [UInt8] {
        [
            UInt8(truncatingIfNeeded: length >> 24), UInt8(truncatingIfNeeded: length >> 16),
            UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length),
            UInt8(truncatingIfNeeded: streamID >> 24), UInt8(truncatingIfNeeded: streamID >> 16),
            UInt8(truncatingIfNeeded: streamID >> 8), UInt8(truncatingIfNeeded: streamID),
            type, flags,
        ]
    }
}

/// What a frame reader saw that is not a well-formed frame.
public enum TTRPCFrameError: Error, Equatable, CustomStringConvertible {
    /// The peer closed the connection inside a frame (after `got` of `expected` bytes).
    case truncated(expected: Int, got: Int)
    /// A header announced more than `TTRPCFrame.maxPayload`; its payload was skipped.
    case oversized(streamID: UInt32, length: UInt32)
    /// read(2)/write(2) failed.
    case system(errno: Int32, operation: String)

    public var description: String {
        switch self {
        case .truncated(let expected, let got):
            return "connection closed inside a ttrpc frame (\(got) of \(expected) bytes)"
        case .oversized(let stream, let length):
            return "ttrpc frame on stream \(stream) announces \(length) bytes, more than the \(TTRPCFrame.maxPayload)-byte limit"
        case .system(let errno, let operation):
            return "\(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))"
        }
    }
}
