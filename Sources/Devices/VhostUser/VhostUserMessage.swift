/// The vhost-user protocol's messages (QEMU's docs/interop/vhost-user.rst): a 12-byte
/// header (request, flags, payload size; little-endian) and a payload, with descriptors
/// travelling beside it (SCM_RIGHTS). Only what a frontend sends and checks is here.
public enum VhostUserRequest: UInt32, Sendable, CustomStringConvertible {
    case getFeatures = 1
    case setFeatures = 2
    case setOwner = 3
    case resetOwner = 4
    case setMemTable = 5
    case setVringNum = 8
    case setVringAddr = 9
    case setVringBase = 10
    case getVringBase = 11
    case setVringKick = 12
    case setVringCall = 13
    case setVringErr = 14
    case getProtocolFeatures = 15
    case setProtocolFeatures = 16
    case getQueueNum = 17
    case setVringEnable = 18

    public var description: String {
        switch self {
        case .getFeatures: "GET_FEATURES"
        case .setFeatures: "SET_FEATURES"
        case .setOwner: "SET_OWNER"
        case .resetOwner: "RESET_OWNER"
        case .setMemTable: "SET_MEM_TABLE"
        case .setVringNum: "SET_VRING_NUM"
        case .setVringAddr: "SET_VRING_ADDR"
        case .setVringBase: "SET_VRING_BASE"
        case .getVringBase: "GET_VRING_BASE"
        case .setVringKick: "SET_VRING_KICK"
        case .setVringCall: "SET_VRING_CALL"
        case .setVringErr: "SET_VRING_ERR"
        case .getProtocolFeatures: "GET_PROTOCOL_FEATURES"
        case .setProtocolFeatures: "SET_PROTOCOL_FEATURES"
        case .getQueueNum: "GET_QUEUE_NUM"
        case .setVringEnable: "SET_VRING_ENABLE"
        }
    }

    /// Requests that the backend always answers (with a payload of `replySize` bytes).
    var replySize: Int? {
        switch self {
        case .getFeatures, .getProtocolFeatures, .getQueueNum: 8
        case .getVringBase: 8
        default: nil
        }
    }
}

/// Feature bits of the vhost-user layer itself.
public enum VhostUserFeature {
    /// In GET/SET_FEATURES: the backend speaks GET/SET_PROTOCOL_FEATURES; its rings then
    /// start disabled until SET_VRING_ENABLE.
    public static let protocolFeatures: UInt64 = 1 << 30
    // Protocol features.
    public static let multiQueue: UInt64 = 1 << 0
    public static let replyAck: UInt64 = 1 << 3
    public static let config: UInt64 = 1 << 9
}

/// One message's header and payload, built or checked without touching a socket.
public struct VhostUserMessage: Equatable, Sendable {
    public static let headerSize = 12
    /// The largest payload a frontend accepts in a reply (replies here are 8 bytes).
    public static let maxReplyPayload = 256
    static let version: UInt32 = 0x1
    static let replyFlag: UInt32 = 1 << 2
    static let needReplyFlag: UInt32 = 1 << 3

    public var request: UInt32
    public var flags: UInt32
    public var payload: [UInt8]

    public init(_ request: VhostUserRequest, payload: [UInt8] = [], needReply: Bool = false) {
        self.request = request.rawValue
        self.flags = Self.version | (needReply ? Self.needReplyFlag : 0)
        self.payload = payload
    }

    public init(request: UInt32, flags: UInt32, payload: [UInt8]) {
        self.request = request
        self.flags = flags
        self.payload = payload
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.headerSize + payload.count)
        out.appendLE(request)
        out.appendLE(flags)
        out.appendLE(UInt32(payload.count))
        return out + payload
    }

    /// What a header announces, with its payload size bounded before anything is read.
    public static func parseHeader(_ header: [UInt8]) throws(VhostUserError) -> (request: UInt32, flags: UInt32, size: Int) {
        guard header.count == headerSize else { throw .malformedReply("a header of \(header.count) bytes") }
        let request = header.loadLE(UInt32.self, at: 0)
        let flags = header.loadLE(UInt32.self, at: 4)
        let size = header.loadLE(UInt32.self, at: 8)
        guard size <= maxReplyPayload else { throw .malformedReply("a payload of \(size) bytes announced") }
        return (request, flags, Int(size))
    }

    /// Checks that a reply answers `request` with `size` payload bytes.
    public func checkReply(to request: VhostUserRequest, size: Int) throws(VhostUserError) {
        guard self.request == request.rawValue else {
            throw .malformedReply("request \(self.request) in the reply to \(request)")
        }
        guard flags & Self.replyFlag != 0, flags & 0x3 == Self.version else {
            throw .malformedReply("flags 0x\(String(flags, radix: 16)) in the reply to \(request)")
        }
        guard payload.count == size else {
            throw .malformedReply("\(payload.count) payload bytes in the reply to \(request), not \(size)")
        }
    }

    // MARK: Payloads

    public static func u64(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        out.appendLE(value)
        return out
    }

    /// A vring state: index and a number (size, base, or enable).
    public static func vringState(index: UInt32, num: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        out.appendLE(index)
        out.appendLE(num)
        return out
    }

    /// Ring addresses in the frontend's address space (the backend translates them with
    /// the memory table).
    public static func vringAddress(index: UInt32, descriptors: UInt64, used: UInt64, available: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        out.appendLE(index)
        out.appendLE(UInt32(0))  // flags: no dirty logging
        out.appendLE(descriptors)
        out.appendLE(used)
        out.appendLE(available)
        out.appendLE(UInt64(0))  // log address
        return out
    }

    /// One region of the memory table.
    public struct MemoryRegion: Equatable, Sendable {
        public var guestAddress: UInt64
        public var size: UInt64
        public var userAddress: UInt64
        public var mmapOffset: UInt64

        public init(guestAddress: UInt64, size: UInt64, userAddress: UInt64, mmapOffset: UInt64) {
            self.guestAddress = guestAddress
            self.size = size
            self.userAddress = userAddress
            self.mmapOffset = mmapOffset
        }
    }

    /// The memory table (its fds go with it, one per region, in order).
    public static func memoryTable(_ regions: [MemoryRegion]) -> [UInt8] {
        var out: [UInt8] = []
        out.appendLE(UInt32(regions.count))
        out.appendLE(UInt32(0))  // padding
        for region in regions {
            out.appendLE(region.guestAddress)
            out.appendLE(region.size)
            out.appendLE(region.userAddress)
            out.appendLE(region.mmapOffset)
        }
        return out
    }

    /// SET_VRING_KICK/CALL/ERR: the queue index; its descriptor travels beside it.
    public static func vringFile(index: UInt32) -> [UInt8] { u64(UInt64(index)) }
}

extension [UInt8] {
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    func loadLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var value: T = 0
        for i in 0..<MemoryLayout<T>.size { value |= T(self[offset + i]) << (8 * i) }
        return value
    }
}
