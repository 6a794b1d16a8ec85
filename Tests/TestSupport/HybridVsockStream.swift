import Glibc

/// A test's host end of one hybrid vsock stream (Firecracker's: connect to the VMM's Unix
/// socket, "CONNECT <port>\n", "OK <host-port>\n"), or of a stream the VMM opened to a
/// `<uds>_<port>` listener. Blocking, with a receive timeout on every read. One thread may
/// write while another reads (a socket allows it); nothing else is shared.
public final class HybridVsockStream: @unchecked Sendable {  // used by one test thread at a time; `isOpen` changes only in close()
    public struct StreamError: Error, CustomStringConvertible {
        public var description: String
    }

    public let fd: Int32
    private var isOpen = true

    /// Adopts a connected socket.
    public init(fd: Int32, timeoutSeconds: Int = 30) {
        self.fd = fd
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Connects through the VMM's socket at `uds` to guest port `port`.
    public convenience init(uds: String, port: UInt32, timeoutSeconds: Int = 30) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = HybridVsockStream.address(uds)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let err = errno
            Glibc.close(fd)
            throw StreamError(description: "connect \(uds): errno \(err)")
        }
        self.init(fd: fd, timeoutSeconds: timeoutSeconds)
        try write(Array("CONNECT \(port)\n".utf8))
        let line = try readLine()
        guard line.hasPrefix("OK ") else { throw StreamError(description: "CONNECT \(port) answered \(line.debugDescription)") }
    }

    deinit { close() }

    public static func address(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.prefix(raw.count - 1).enumerated() { raw[i] = byte }
            raw[min(bytes.count, raw.count - 1)] = 0
        }
        return address
    }

    /// A listening socket at `path` (for the guest's connections to `<uds>_<port>`).
    public static func listen(_ path: String) throws -> Int32 {
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = address(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 16) == 0 else {
            Glibc.close(fd)
            throw StreamError(description: "listen \(path): errno \(errno)")
        }
        return fd
    }

    /// Waits up to `timeoutMs` for the guest's connection on `listener`.
    public static func accept(_ listener: Int32, timeoutMs: Int32) -> HybridVsockStream? {
        var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, timeoutMs) == 1 else { return nil }
        let fd = Glibc.accept(listener, nil, nil)
        return fd >= 0 ? HybridVsockStream(fd: fd) : nil
    }

    public func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw StreamError(description: "send: errno \(errno)") }
            offset += n
        }
    }

    public enum ReadEnd: Equatable { case endOfFile, timeout, error(Int32) }

    /// One read: the bytes, or how the stream ended.
    public func readSome(max: Int = 1 << 16) -> Result<[UInt8], ReadError> {
        var buffer = [UInt8](repeating: 0, count: max)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, max, 0) }
            if n > 0 { return .success(Array(buffer[..<n])) }
            if n == 0 { return .failure(ReadError(end: .endOfFile)) }
            if errno == EINTR { continue }
            return .failure(ReadError(end: errno == EAGAIN || errno == EWOULDBLOCK ? .timeout : .error(errno)))
        }
    }

    public struct ReadError: Error { public var end: ReadEnd }

    /// Everything up to the end of the stream, and how it ended.
    public func readToEnd() -> (bytes: [UInt8], end: ReadEnd) {
        var out: [UInt8] = []
        while true {
            switch readSome() {
            case .success(let bytes): out += bytes
            case .failure(let error): return (out, error.end)
            }
        }
    }

    /// A line without its newline, read a byte at a time (nothing past it).
    public func readLine() throws -> String {
        var line: [UInt8] = []
        while line.count < 4096 {
            switch readSome(max: 1) {
            case .success(let byte):
                if byte == [UInt8(ascii: "\n")] { return String(decoding: line, as: UTF8.self) }
                line += byte
            case .failure(let error):
                throw StreamError(description: "line ended by \(error.end) after \(String(decoding: line, as: UTF8.self).debugDescription)")
            }
        }
        throw StreamError(description: "line too long")
    }

    public func shutdown(_ how: Int32) { _ = Glibc.shutdown(fd, how) }

    public func close() {
        guard isOpen else { return }
        isOpen = false
        Glibc.close(fd)
    }
}
