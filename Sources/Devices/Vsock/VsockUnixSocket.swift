import CLinux
import Glibc
import VMM
import LinuxSupport

/// Why the hybrid vsock backend could not be set up.
public enum VsockError: Error, CustomStringConvertible, Equatable {
    case invalidGuestCid(UInt64)
    case pathTooLong(String, limit: Int)
    case pathInUse(String)
    case system(String, errno: Int32)

    public var description: String {
        switch self {
        case .invalidGuestCid(let cid): return "vsock guest CID \(cid) is reserved (it must be at least 3)"
        case .pathTooLong(let path, let limit):
            return "vsock socket path \(path) is \(path.utf8.count) bytes long; a Unix socket path holds at most \(limit)"
        case .pathInUse(let path): return "vsock socket path \(path) exists and is not a socket"
        case .system(let what, let errno): return "\(what) failed: \(String(cString: strerror(errno))) (errno \(errno))"
        }
    }
}

/// The few Unix-socket system calls the hybrid vsock backend makes: every socket is
/// non-blocking and close-on-exec, every send suppresses SIGPIPE.
enum VsockUnixSocket {
    static let maxPathLength = UnixSocketAddress.maxPathLength

    static func address(_ path: String) throws -> UnixSocketAddress {
        guard let address = UnixSocketAddress(path) else { throw VsockError.pathTooLong(path, limit: maxPathLength) }
        return address
    }

    static func newSocket() -> Int32 {
        socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }

    /// Binds and listens on `path`, replacing a stale socket file (never another kind of file).
    static func listen(path: String, backlog: Int32) throws -> Int32 {
        let address = try address(path)
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else { throw VsockError.pathInUse(path) }
            unlink(path)
        }
        let fd = newSocket()
        guard fd >= 0 else { throw VsockError.system("socket(AF_UNIX)", errno: errno) }
        if address.bind(fd) < 0 {
            let err = errno
            Glibc.close(fd)
            throw VsockError.system("bind \(path)", errno: err)
        }
        if Glibc.listen(fd, backlog) < 0 {
            let err = errno
            Glibc.close(fd)
            unlink(path)
            throw VsockError.system("listen \(path)", errno: err)
        }
        return fd
    }

    /// Connects to `path` without blocking (a Unix stream connect either completes at once
    /// or fails, e.g. EAGAIN when the listener's backlog is full). Nil on failure.
    static func connect(path: String) -> Int32? {
        guard let address = try? address(path) else { return nil }
        let fd = newSocket()
        guard fd >= 0 else { return nil }
        if address.connect(fd) < 0 {
            Glibc.close(fd)
            return nil
        }
        return fd
    }

    enum AcceptResult {
        case accepted(Int32)
        case none
        /// Out of descriptors or memory: the connection stays queued, retry later.
        case exhausted(Int32)
    }

    static func accept(_ listener: Int32) -> AcceptResult {
        while true {
            let fd = VsockLibc.accept4(listener, nil, nil, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            if fd >= 0 { return .accepted(fd) }
            switch errno {
            case EINTR, ECONNABORTED, EPROTO: continue
            case EAGAIN, EWOULDBLOCK: return .none
            default: return .exhausted(errno)
            }
        }
    }

    enum IOResult: Equatable {
        case transferred(Int)
        case wouldBlock
        case endOfFile
        case failed(Int32)
    }

    /// Scatter read into `pieces`.
    static func read(_ fd: Int32, into pieces: [UnsafeMutableRawBufferPointer]) -> IOResult {
        // IOV_MAX is 1024: a chain of more pieces is read in part (the used length says so).
        var iov = pieces.prefix(1024).filter { $0.count > 0 }.map { iovec(iov_base: $0.baseAddress, iov_len: $0.count) }
        guard !iov.isEmpty else { return .transferred(0) }
        while true {
            let n = iov.withUnsafeMutableBufferPointer { readv(fd, $0.baseAddress, Int32($0.count)) }
            if n > 0 { return .transferred(n) }
            if n == 0 { return .endOfFile }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return .wouldBlock }
            return .failed(errno)
        }
    }

    /// Gather send of `pieces` (at most 1024 of them), never raising SIGPIPE.
    static func send(_ fd: Int32, _ pieces: [UnsafeRawBufferPointer]) -> IOResult {
        var iov = pieces.prefix(1024).filter { $0.count > 0 }
            .map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
        guard !iov.isEmpty else { return .transferred(0) }
        while true {
            let n = iov.withUnsafeMutableBufferPointer { buffer -> Int in
                var message = msghdr()
                message.msg_iov = buffer.baseAddress
                message.msg_iovlen = buffer.count
                return sendmsg(fd, &message, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if n >= 0 { return .transferred(n) }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return .wouldBlock }
            return .failed(errno)
        }
    }

    /// Peeks at up to `count` bytes without consuming them.
    static func peek(_ fd: Int32, count: Int) -> (IOResult, [UInt8]) {
        var bytes = [UInt8](repeating: 0, count: count)
        while true {
            let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress, count, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT)) }
            if n > 0 { return (.transferred(n), Array(bytes.prefix(n))) }
            if n == 0 { return (.endOfFile, []) }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return (.wouldBlock, []) }
            return (.failed(errno), [])
        }
    }

    /// Consumes `count` bytes already known to be queued (after a peek).
    static func discard(_ fd: Int32, count: Int) -> Bool {
        var bytes = [UInt8](repeating: 0, count: count)
        let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress, count, Int32(MSG_DONTWAIT)) }
        return n == count
    }

    /// Whether the socket really is hung up or in error right now (checks an epoll event
    /// that might be stale: its descriptor number may have been reused since).
    static func isHungUpOrFailed(_ fd: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN | POLLOUT), revents: 0)
        guard poll(&p, 1, 0) == 1 else { return false }
        return Int32(p.revents) & (Int32(POLLHUP) | Int32(POLLERR) | Int32(POLLNVAL)) != 0
    }

    static func hasError(_ fd: Int32) -> Bool {
        var p = pollfd(fd: fd, events: 0, revents: 0)
        guard poll(&p, 1, 0) == 1 else { return false }
        return Int32(p.revents) & (Int32(POLLERR) | Int32(POLLNVAL)) != 0
    }
}

/// The GNU socket and timer calls the Glibc module does not import, through CKVM.
enum VsockLibc {
    static func accept4(_ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>?, _ length: UnsafeMutablePointer<socklen_t>?,
                        _ flags: Int32) -> Int32 {
        clinux_accept4(fd, address, length, flags)
    }
}
