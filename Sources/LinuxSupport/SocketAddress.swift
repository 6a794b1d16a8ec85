#if canImport(Glibc)
import Glibc
private let systemConnect = Glibc.connect
private let systemBind = Glibc.bind
#elseif canImport(Musl)
import Musl
private let systemConnect = Musl.connect
private let systemBind = Musl.bind
#endif
import CLinux

/// A Unix socket's path as the kernel takes it (`sockaddr_un`): checked once for what
/// sun_path holds (107 bytes and a NUL, no NUL inside), then bound or connected to.
public struct UnixSocketAddress: Sendable, Equatable, CustomStringConvertible {
    public let path: String

    /// sun_path holds 108 bytes including the terminating NUL.
    public static let maxPathLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// Nil when the path is empty, too long or holds a NUL: the caller names the limit in its own error.
    public init?(_ path: String) {
        let length = path.utf8.count
        guard length > 0, length <= Self.maxPathLength, !path.utf8.contains(0) else { return nil }
        self.path = path
    }

    public var description: String { path }

    /// `body` gets the address as the socket calls take it.
    public func withSocketAddress<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> Result) rethrows -> Result {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        return try withUnsafePointer(to: &address) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// connect(2) of `fd` to this address; the raw result (0, or -1 with errno).
    public func connect(_ fd: Int32) -> Int32 {
        withSocketAddress { systemConnect(fd, $0, $1) }
    }

    /// bind(2) of `fd` to this address; the raw result (0, or -1 with errno).
    public func bind(_ fd: Int32) -> Int32 {
        withSocketAddress { systemBind(fd, $0, $1) }
    }
}

/// An AF_VSOCK address (`sockaddr_vm`): the guest agent listens on one, any CID.
public struct VsockSocketAddress: Sendable, Equatable {
    public let cid: UInt32
    public let port: UInt32

    /// VMADDR_CID_ANY: whichever CID this machine has.
    public static let anyCID: UInt32 = 0xFFFF_FFFF

    public init(cid: UInt32 = VsockSocketAddress.anyCID, port: UInt32) {
        self.cid = cid
        self.port = port
    }

    public func withSocketAddress<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> Result) rethrows -> Result {
        var address = sockaddr_vm()
        address.svm_family = sa_family_t(AF_VSOCK)
        address.svm_port = port
        address.svm_cid = cid
        return try withUnsafePointer(to: &address) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_vm>.size)) }
        }
    }

    public func bind(_ fd: Int32) -> Int32 {
        withSocketAddress { systemBind(fd, $0, $1) }
    }
}
