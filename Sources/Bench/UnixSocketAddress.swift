import Glibc

/// A `sockaddr_un` for a path, or nil when the path does not fit (108 bytes): the
/// benchmarks dial and listen on VMM sockets without Foundation's networking.
enum UnixSocketAddress {
    static func make(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return address
    }
}
