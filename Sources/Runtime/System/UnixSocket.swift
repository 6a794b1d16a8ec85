import CLinux
import Glibc
import LinuxSupport

/// A Unix stream socket fd (owned: closed on deinit) with the operations the runtime uses:
/// connect, listen/accept, and passing fds with SCM_RIGHTS.
public final class UnixSocket {
    public private(set) var fd: Int32

    public init(fd: Int32) { self.fd = fd }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Gives up ownership of the fd.
    public func release() -> Int32 {
        let result = fd
        fd = -1
        return result
    }

    static func address(_ path: String) throws -> UnixSocketAddress {
        guard let address = UnixSocketAddress(path) else {
            throw RuntimeError("socket path \(path): \(path.utf8.count) bytes, longer than the \(UnixSocketAddress.maxPathLength) a Unix socket allows")
        }
        return address
    }

    public static func connect(to path: String) throws -> UnixSocket {
        let address = try address(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        let socket = UnixSocket(fd: fd)
        guard address.connect(fd) == 0 else { throw SystemError("connect \(path)") }
        return socket
    }

    public static func listen(at path: String, backlog: Int32 = 16) throws -> UnixSocket {
        let address = try address(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        let socket = UnixSocket(fd: fd)
        unlink(path)
        guard address.bind(fd) == 0 else { throw SystemError("bind \(path)") }
        guard Glibc.listen(fd, backlog) == 0 else { throw SystemError("listen \(path)") }
        return socket
    }

    /// Waits up to `timeoutMs` (-1: forever) for a connection.
    public func accept(timeoutMs: Int32 = -1) throws -> UnixSocket? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&pfd, 1, timeoutMs)
            if ready < 0 && errno == EINTR { continue }
            guard ready >= 0 else { throw SystemError("poll") }
            if ready == 0 { return nil }
            break
        }
        let client = clinux_accept4(fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
        guard client >= 0 else { throw SystemError("accept") }
        return UnixSocket(fd: client)
    }

    public func write(_ bytes: [UInt8]) throws { try FileDescriptors.writeAll(fd, bytes) }

    public func write(_ text: String) throws { try write(Array(text.utf8)) }

    /// One line (without the newline), at most `limit` bytes; nil at EOF before any byte.
    public func readLine(limit: Int = 65536) throws -> String? {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = read(fd, &byte, 1)
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError("read")
            }
            if count == 0 { return line.isEmpty ? nil : String(decoding: line, as: UTF8.self) }
            if byte == UInt8(ascii: "\n") { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
            guard line.count <= limit else { throw RuntimeError("line longer than \(limit) bytes") }
        }
    }

    /// SCM_RIGHTS: `fds` travel with `payload` (an empty payload becomes one NUL byte).
    public func send(fds: [Int32], payload: [UInt8]) throws {
        try DescriptorPassing.send(on: fd, payload: payload.isEmpty ? [0] : payload, fds: fds)
    }

    /// Receives one message with up to `maxFds` fds (made O_CLOEXEC).
    public func receive(maxFds: Int = 8, maxPayload: Int = 4096) throws -> (payload: [UInt8], fds: [Int32]) {
        try DescriptorPassing.receive(on: fd, maxFds: maxFds, maxPayload: maxPayload)
    }
}
