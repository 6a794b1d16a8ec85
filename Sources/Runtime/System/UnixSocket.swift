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

    /// SCM_RIGHTS: `fds` travel with `payload` (which must not be empty).
    public func send(fds: [Int32], payload: [UInt8]) throws {
        let dataLength = fds.count * MemoryLayout<Int32>.size
        let headerLength = MemoryLayout<cmsghdr>.size
        let space = headerLength + ((dataLength + 7) & ~7)
        var control = [UInt8](repeating: 0, count: space)
        control.withUnsafeMutableBytes { raw in
            let header = raw.baseAddress!.assumingMemoryBound(to: cmsghdr.self)
            header.pointee.cmsg_len = headerLength + dataLength
            header.pointee.cmsg_level = SOL_SOCKET
            header.pointee.cmsg_type = Int32(SCM_RIGHTS)
            for (index, value) in fds.enumerated() {
                raw.storeBytes(of: value, toByteOffset: headerLength + index * 4, as: Int32.self)
            }
        }
        var payload = payload.isEmpty ? [0] : payload
        let sent = Self.withMessage(payload: &payload, control: &control) { sendmsg(fd, &$0, Int32(MSG_NOSIGNAL)) }
        guard sent >= 0 else { throw SystemError("sendmsg (SCM_RIGHTS)") }
    }

    /// Receives one message with up to `maxFds` fds (made O_CLOEXEC).
    public func receive(maxFds: Int = 8, maxPayload: Int = 4096) throws -> (payload: [UInt8], fds: [Int32]) {
        let headerLength = MemoryLayout<cmsghdr>.size
        var control = [UInt8](repeating: 0, count: headerLength + ((maxFds * 4 + 7) & ~7))
        var payload = [UInt8](repeating: 0, count: maxPayload)
        var controlLength = 0
        let received = Self.withMessage(payload: &payload, control: &control) { message -> Int in
            let count = recvmsg(fd, &message, Int32(MSG_CMSG_CLOEXEC))
            controlLength = message.msg_controllen
            return count
        }
        guard received >= 0 else { throw SystemError("recvmsg") }
        var fds: [Int32] = []
        if controlLength >= headerLength {
            control.withUnsafeBytes { raw in
                let length = raw.load(as: Int.self)  // cmsg_len
                let level = raw.load(fromByteOffset: 8, as: Int32.self)
                let type = raw.load(fromByteOffset: 12, as: Int32.self)
                guard level == SOL_SOCKET, type == Int32(SCM_RIGHTS), length >= headerLength, length <= raw.count else { return }
                let count = (length - headerLength) / 4
                for index in 0..<count { fds.append(raw.load(fromByteOffset: headerLength + index * 4, as: Int32.self)) }
            }
        }
        return (Array(payload[0..<received]), fds)
    }

    /// A msghdr over one payload buffer and a control buffer, for sendmsg and recvmsg.
    private static func withMessage(payload: inout [UInt8], control: inout [UInt8], _ body: (inout msghdr) -> Int) -> Int {
        payload.withUnsafeMutableBytes { data in
            control.withUnsafeMutableBytes { controlRaw in
                var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var message = msghdr()
                    message.msg_iov = vectorPointer
                    message.msg_iovlen = 1
                    message.msg_control = controlRaw.baseAddress
                    message.msg_controllen = controlRaw.count
                    return body(&message)
                }
            }
        }
    }
}
