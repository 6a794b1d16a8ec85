import CLinux
import Glibc
import VMM
import LinuxSupport

/// A Linux TAP interface opened with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR: every frame read
/// or written carries a 12-byte virtio-net header first, so offloads (checksum, TSO) pass
/// between the guest and the host stack untouched. Non-blocking, for the event loop.
public final class Tap: Sendable {
    public static let vnetHeaderSize: Int32 = 12

    public enum OpenError: Error, CustomStringConvertible, Equatable {
        case badName(String)
        case cannotOpen(SystemError)
        case cannotAttach(name: String, errno: Int32)

        public var description: String {
            switch self {
            case .badName(let name): return "invalid tap name '\(name)': 1 to 15 characters"
            case .cannotOpen(let error): return "cannot open /dev/net/tun: \(error)"
            case .cannotAttach(let name, let err):
                return "cannot attach to tap '\(name)': \(String(cString: strerror(err)))"
                    + (err == EPERM ? " (it must exist and belong to this user, or the VMM needs CAP_NET_ADMIN)" : "")
                    + (err == EBUSY ? " (another process holds it; taps here are single-queue)" : "")
            }
        }
    }

    public let fd: OwnedFileDescriptor
    public let name: String

    /// Opens the tap `name` (created if it does not exist and the process may).
    public init(name: String) throws {
        guard !name.isEmpty, name.utf8.count < 16 else { throw OpenError.badName(name) }
        let raw = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        if raw < 0 { throw OpenError.cannotOpen(SystemError("open /dev/net/tun")) }
        fd = OwnedFileDescriptor(raw)
        var actual = [CChar](repeating: 0, count: 16)
        let flags = Int16(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
        guard clinux_tun_set_iff(raw, name, flags, &actual) == 0 else {
            throw OpenError.cannotAttach(name: name, errno: errno)
        }
        self.name = String(cString: actual)
        guard clinux_tun_set_vnet_hdr_size(raw, Self.vnetHeaderSize) == 0 else {
            throw OpenError.cannotAttach(name: name, errno: errno)
        }
    }

    /// TUNSETOFFLOAD: which offloaded frames the host may hand the guest.
    public func setOffloads(checksum: Bool, tso4: Bool, tso6: Bool) throws {
        var flags: UInt32 = 0
        if checksum { flags |= UInt32(TUN_F_CSUM) }
        if checksum && tso4 { flags |= UInt32(TUN_F_TSO4) }
        if checksum && tso6 { flags |= UInt32(TUN_F_TSO6) }
        try check("TUNSETOFFLOAD (\(name))", clinux_tun_set_offload(fd.rawValue, flags))
    }

    /// Reads one frame (vnet header + packet); nil when none is waiting.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int? {
        while true {
            let n = Glibc.read(fd.rawValue, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            if errno == EAGAIN { return nil }
            throw SystemError("read tap \(name)")
        }
    }

    /// Writes one frame gathered from `pieces`; false when the tap would block.
    public func write(_ pieces: [UnsafeMutableRawBufferPointer]) throws -> Bool {
        var iov = pieces.map { iovec(iov_base: $0.baseAddress, iov_len: $0.count) }
        while true {
            let n = writev(fd.rawValue, &iov, Int32(iov.count))
            if n >= 0 { return true }
            if errno == EINTR { continue }
            if errno == EAGAIN { return false }
            throw SystemError("write tap \(name)")
        }
    }
}
