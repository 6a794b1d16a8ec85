#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A connected stream socket that carries ttrpc frames, used by the agent and by
/// `AgentClient`. It owns the descriptor (closed in deinit). Reads are meant for one
/// reader thread; writes are serialized by a lock so that concurrent responses (or
/// requests) never interleave.
public final class FrameChannel: @unchecked Sendable {  // writes under `writeLock` (pthread mutex); one reader thread; `fd` is `let`
    public let fd: Int32
    private var writeLock = pthread_mutex_t()
    private var closed = false

    public init(fd: Int32) {
        self.fd = fd
        pthread_mutex_init(&writeLock, nil)
    }

    deinit {
        if !closed { close(fd) }
        pthread_mutex_destroy(&writeLock)
    }

    /// Shuts the socket down both ways: a reader blocked in `readFrame` returns.
    public func shutdownBoth() {
        _ = shutdown(fd, Int32(SHUT_RDWR))
    }

    /// The next frame, or nil at a clean end of stream (between frames).
    /// Oversized frames are skipped (bounded by the announced length, read in chunks)
    /// and reported as `.oversized` so that the caller can answer and go on.
    public func readFrame() throws(TTRPCFrameError) -> TTRPCFrame? {
        var header = [UInt8](repeating: 0, count: TTRPCFrame.headerSize)
        let got = try readFully(&header, count: TTRPCFrame.headerSize)
        if got == 0 { return nil }
        if got < TTRPCFrame.headerSize { throw .truncated(expected: TTRPCFrame.headerSize, got: got) }
        let length = UInt32(header[0]) << 24 | UInt32(header[1]) << 16 | UInt32(header[2]) << 8 | UInt32(header[3])
        let stream = UInt32(header[4]) << 24 | UInt32(header[5]) << 16 | UInt32(header[6]) << 8 | UInt32(header[7])
        if length > UInt32(TTRPCFrame.maxPayload) {
            try skip(Int(length))
            throw .oversized(streamID: stream, length: length)
        }
        var payload = [UInt8](repeating: 0, count: Int(length))
        if length > 0 {
            let n = try readFully(&payload, count: Int(length))
            if n < Int(length) { throw .truncated(expected: Int(length), got: n) }
        }
        return TTRPCFrame(streamID: stream, rawType: header[8], flags: header[9], payload: payload)
    }

    /// Writes the whole frame (header and payload) under the write lock.
    public func writeFrame(_ frame: TTRPCFrame) throws(TTRPCFrameError) {
        try writeAll(frame.encoded())
    }

    /// Writes raw bytes under the write lock (tests use it to send malformed frames).
    public func writeAll(_ bytes: [UInt8]) throws(TTRPCFrameError) {
        pthread_mutex_lock(&writeLock)
        defer { pthread_mutex_unlock(&writeLock) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                send(fd, raw.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw .system(errno: errno, operation: "send")
            }
            offset += n
        }
    }

    private func readFully(_ buffer: inout [UInt8], count: Int) throws(TTRPCFrameError) -> Int {
        var offset = 0
        while offset < count {
            let n = buffer.withUnsafeMutableBytes { raw in
                read(fd, raw.baseAddress! + offset, count - offset)
            }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ECONNRESET && offset == 0 { return 0 }
                throw .system(errno: errno, operation: "read")
            }
            if n == 0 { return offset }
            offset += n
        }
        return offset
    }

    private func skip(_ length: Int) throws(TTRPCFrameError) {
        var remaining = length
        var scratch = [UInt8](repeating: 0, count: 64 * 1024)
        while remaining > 0 {
            let want = min(remaining, scratch.count)
            let n = try readFully(&scratch, count: want)
            if n < want { throw .truncated(expected: length, got: length - remaining + n) }
            remaining -= n
        }
    }
}
