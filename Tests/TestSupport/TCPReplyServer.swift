import Foundation
import Glibc

/// A host-side TCP peer for guest network tests: listens on an IPv4 or IPv6 address, and on each
/// connection reads one line, records it and answers `reply`, then closes. Real sockets,
/// so that a test sees the guest's packets cross tap, tc redirect and veth.
public final class TCPReplyServer: @unchecked Sendable {  // `received`/`stopped` under `lock` (NSLock); the rest is `let`
    public let port: UInt16
    private let fd: Int32
    private let reply: String
    private let lock = NSLock()
    private var received: [String] = []
    private var stopped = false

    public init(address: String, port: UInt16, reply: String) throws {
        let v6 = address.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Fixtures.FixtureError("socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound: Int32
        if v6 {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, address, &addr.sin6_addr) == 1 else {
                close(fd)
                throw Fixtures.FixtureError("not an IPv6 address: \(address)")
            }
            bound = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = port.bigEndian
            guard inet_pton(AF_INET, address, &addr.sin_addr) == 1 else {
                close(fd)
                throw Fixtures.FixtureError("not an IPv4 address: \(address)")
            }
            bound = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        guard bound == 0, listen(fd, 8) == 0 else {
            let code = errno
            close(fd)
            throw Fixtures.FixtureError("bind/listen \(address):\(port): errno \(code)")
        }
        self.fd = fd
        self.port = port
        self.reply = reply
        let thread = Thread { [self] in self.serve() }
        thread.start()
    }

    /// The lines the peers sent, in order.
    public var lines: [String] { lock.withLock { received } }

    public func stop() {
        lock.withLock { stopped = true }
        shutdown(fd, Int32(SHUT_RDWR))
    }

    deinit { close(fd) }

    private func serve() {
        while !lock.withLock({ stopped }) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 200) > 0 else { continue }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { continue }
            var timeout = timeval(tv_sec: 30, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var line: [UInt8] = []
            var byte: UInt8 = 0
            while line.count < 4096, recv(client, &byte, 1, 0) == 1, byte != UInt8(ascii: "\n") { line.append(byte) }
            lock.withLock { received.append(String(decoding: line, as: UTF8.self)) }
            let answer = Array((reply + "\n").utf8)
            _ = answer.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(client)
        }
    }
}
