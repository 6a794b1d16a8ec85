/// Checksummed, sequence-numbered frames for the vsock stress tests (the scripted guest's
/// and guest/vsock-test/init.c's, which speaks the same format): a frame that arrives
/// cut, duplicated, reordered or changed says which, and where.
///
/// Frame: magic "KVSF" (0x4b565346), sequence number, payload length, FNV-1a 32 of the
/// payload (little-endian u32s), then the payload, byte i = (salt * 131 + i * 7) & 0xff
/// where salt is the sequence number (host frames) or the sequence number ^ 0x5a5a
/// (guest frames).
public enum VsockFrame {
    public static let magic: UInt32 = 0x4b56_5346
    public static let headerSize = 16
    public static let maxPayload = 64 << 10

    public static func salt(_ seq: UInt32, fromGuest: Bool) -> UInt32 { fromGuest ? seq ^ 0x5a5a : seq }

    public static func payloadByte(salt: UInt32, _ i: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: salt &* 131 &+ UInt32(truncatingIfNeeded: i) &* 7)
    }

    public static func fnv(_ bytes: some Sequence<UInt8>, _ start: UInt32 = 2_166_136_261) -> UInt32 {
        var h = start
        for b in bytes { h = (h ^ UInt32(b)) &* 16_777_619 }
        return h
    }

    public static func encode(seq: UInt32, length: Int, fromGuest: Bool) -> [UInt8] {
        let salt = salt(seq, fromGuest: fromGuest)
        let payload = (0..<length).map { payloadByte(salt: salt, $0) }
        var out: [UInt8] = []
        out.reserveCapacity(headerSize + length)
        for v in [magic, seq, UInt32(length), fnv(payload)] {
            out += [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v >> 16),
                    UInt8(truncatingIfNeeded: v >> 24)]
        }
        return out + payload
    }

    /// The sizes guest/vsock-test/init.c draws for its frames, in order (a 32-bit LCG).
    public struct Sizes {
        var state: UInt32
        public init(seed: UInt32) { state = seed &* 2_654_435_761 &+ 1 }
        public mutating func next() -> Int {
            state = state &* 1_664_525 &+ 1_013_904_223
            var length = (state >> 8) % UInt32(maxPayload + 1)
            if state & 3 == 0 { length %= 64 }  // many small frames too
            return Int(length)
        }
    }
}

/// Parses one direction's byte stream into frames and checks each: the first fault ends
/// the check and is kept, with its place in the stream.
public struct VsockFrameChecker {
    public let fromGuest: Bool
    public private(set) var frames = 0
    public private(set) var bytes = 0
    public private(set) var fault: String?
    private var buffer: [UInt8] = []
    private var start = 0

    public init(fromGuest: Bool) { self.fromGuest = fromGuest }

    /// Feeds bytes as they arrive.
    public mutating func feed(_ data: some Collection<UInt8>) {
        guard fault == nil else { return }
        buffer += data
        while fault == nil, buffer.count - start >= VsockFrame.headerSize {
            func u32(_ at: Int) -> UInt32 {
                let p = start + at
                return UInt32(buffer[p]) | UInt32(buffer[p + 1]) << 8 | UInt32(buffer[p + 2]) << 16 | UInt32(buffer[p + 3]) << 24
            }
            let magic = u32(0), seq = u32(4), length = Int(u32(8)), sum = u32(12)
            guard magic == VsockFrame.magic, seq == UInt32(truncatingIfNeeded: frames), length <= VsockFrame.maxPayload else {
                fault = "frame \(frames) at stream byte \(bytes): magic \(String(magic, radix: 16)), seq \(seq), length \(length)"
                return
            }
            guard buffer.count - start >= VsockFrame.headerSize + length else { break }
            let payload = buffer[(start + VsockFrame.headerSize)..<(start + VsockFrame.headerSize + length)]
            let salt = VsockFrame.salt(seq, fromGuest: fromGuest)
            if let bad = payload.indices.first(where: { payload[$0] != VsockFrame.payloadByte(salt: salt, $0 - payload.startIndex) }) {
                let offset = bad - payload.startIndex
                fault = "frame \(seq) (\(length) bytes) at stream byte \(bytes): payload byte \(offset) wrong; checksum "
                    + (VsockFrame.fnv(payload) == sum ? "matches" : "differs")
                return
            }
            if VsockFrame.fnv(payload) != sum {
                fault = "frame \(seq) at stream byte \(bytes): checksum differs"
                return
            }
            frames += 1
            bytes += VsockFrame.headerSize + length
            start += VsockFrame.headerSize + length
        }
        if start > 1 << 20 {
            buffer.removeFirst(start)
            start = 0
        }
    }
}
