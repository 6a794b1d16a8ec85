/// The virtio-vsock packet header (virtio 1.2, 5.10.6 `struct virtio_vsock_hdr`): 44
/// little-endian bytes in front of every packet on the rx and tx queues.
public struct VsockPacketHeader: Equatable, Sendable {
    public static let size = 44
    /// The host's context ID (VMADDR_CID_HOST).
    public static let hostCid: UInt64 = 2
    /// The only socket type the device supports (VIRTIO_VSOCK_TYPE_STREAM).
    public static let typeStream: UInt16 = 1

    public enum Op: UInt16, Sendable {
        case request = 1
        case response = 2
        case rst = 3
        case shutdown = 4
        case rw = 5
        case creditUpdate = 6
        case creditRequest = 7
    }

    /// SHUTDOWN flags: the sender will receive (RCV) / send (SEND) no more.
    public static let shutdownReceive: UInt32 = 1
    public static let shutdownSend: UInt32 = 2

    public var srcCid: UInt64
    public var dstCid: UInt64
    public var srcPort: UInt32
    public var dstPort: UInt32
    public var len: UInt32
    public var type: UInt16
    public var op: UInt16
    public var flags: UInt32
    public var bufAlloc: UInt32
    public var fwdCnt: UInt32

    public init(srcCid: UInt64, dstCid: UInt64, srcPort: UInt32, dstPort: UInt32, len: UInt32 = 0,
                type: UInt16 = VsockPacketHeader.typeStream, op: UInt16, flags: UInt32 = 0,
                bufAlloc: UInt32 = 0, fwdCnt: UInt32 = 0) {
        self.srcCid = srcCid
        self.dstCid = dstCid
        self.srcPort = srcPort
        self.dstPort = dstPort
        self.len = len
        self.type = type
        self.op = op
        self.flags = flags
        self.bufAlloc = bufAlloc
        self.fwdCnt = fwdCnt
    }

    public init(srcCid: UInt64, dstCid: UInt64, srcPort: UInt32, dstPort: UInt32, len: UInt32 = 0,
                op: Op, flags: UInt32 = 0, bufAlloc: UInt32 = 0, fwdCnt: UInt32 = 0) {
        self.init(srcCid: srcCid, dstCid: dstCid, srcPort: srcPort, dstPort: dstPort, len: len,
                  type: Self.typeStream, op: op.rawValue, flags: flags, bufAlloc: bufAlloc, fwdCnt: fwdCnt)
    }

    public var knownOp: Op? { Op(rawValue: op) }

    /// Decodes the first 44 bytes of `bytes`; nil when there are fewer.
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.size else { return nil }
        func field<T: FixedWidthInteger>(_: T.Type, _ offset: Int) -> T {
            T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        srcCid = field(UInt64.self, 0)
        dstCid = field(UInt64.self, 8)
        srcPort = field(UInt32.self, 16)
        dstPort = field(UInt32.self, 20)
        len = field(UInt32.self, 24)
        type = field(UInt16.self, 28)
        op = field(UInt16.self, 30)
        flags = field(UInt32.self, 32)
        bufAlloc = field(UInt32.self, 36)
        fwdCnt = field(UInt32.self, 40)
    }

    public init?(_ bytes: [UInt8]) {
        guard let header = bytes.withUnsafeBytes({ Self($0) }) else { return nil }
        self = header
    }

    /// Reads the header from the front of a chain; nil when the chain is too short.
    public init?(reading reader: inout ChainReader) {
        var raw = [UInt8](repeating: 0, count: Self.size)
        let n = raw.withUnsafeMutableBytes { reader.read(into: $0) }
        guard n == Self.size, let header = Self(raw) else { return nil }
        self = header
    }

    /// Encodes into the first 44 bytes of `target` (which must hold them).
    public func encode(into target: UnsafeMutableRawBufferPointer) {
        precondition(target.count >= Self.size)
        func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
            target.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
        }
        put(srcCid, 0)
        put(dstCid, 8)
        put(srcPort, 16)
        put(dstPort, 20)
        put(len, 24)
        put(type, 28)
        put(op, 30)
        put(flags, 32)
        put(bufAlloc, 36)
        put(fwdCnt, 40)
    }

    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.size)
        out.withUnsafeMutableBytes { encode(into: $0) }
        return out
    }

    /// Scatters the encoded header over `pieces` (host views of guest buffers).
    func scatter(into pieces: [UnsafeMutableRawBufferPointer]) {
        let encoded = bytes
        var offset = 0
        for piece in pieces where offset < encoded.count {
            let n = min(piece.count, encoded.count - offset)
            encoded.withUnsafeBytes { piece.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
            offset += n
        }
    }
}

/// Feature bits of virtio-vsock (virtio 1.2, 5.10.3).
public enum VsockFeature {
    /// Stream sockets (VIRTIO_VSOCK_F_STREAM); drivers assume it when nothing is offered.
    public static let stream: UInt64 = 1 << 0
}
