import VMM

/// What the VMM answers on a virtio-fs request queue once its backend is gone: each
/// request gets the FUSE reply header alone with `error` = -EIO, so that the guest's
/// system calls fail with EIO instead of waiting forever (a FUSE request without reply,
/// FORGET and BATCH_FORGET, is only returned).
enum FuseFailureReply {
    /// struct fuse_in_header: len, opcode, unique, nodeid, uid, gid, pid, padding.
    static let inHeaderSize = 40
    /// struct fuse_out_header: len, error, unique.
    static let outHeaderSize = 16
    static let forget: UInt32 = 2
    static let batchForget: UInt32 = 42
    static let eio: Int32 = 5

    /// The reply for a request whose header is `header` (nil: none to answer), written
    /// into the chain's writable part: returns the used length.
    static func answer(_ chain: DescriptorChain, _ memory: GuestMemory) -> UInt32 {
        var reader = chain.reader(memory)
        var header = [UInt8](repeating: 0, count: inHeaderSize)
        let got = header.withUnsafeMutableBytes { reader.read(into: $0) }
        guard got == inHeaderSize else { return 0 }
        let opcode = header.loadLE(UInt32.self, at: 4)
        guard opcode != forget, opcode != batchForget else { return 0 }
        var writer = chain.writer(memory)
        guard writer.remaining >= outHeaderSize else { return 0 }
        var reply: [UInt8] = []
        reply.appendLE(UInt32(outHeaderSize))
        reply.appendLE(-eio)
        reply.append(contentsOf: header[8..<16])  // unique
        return UInt32(writer.write(reply))
    }
}
