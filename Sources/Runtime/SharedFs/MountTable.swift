import Foundation
import Glibc

/// The mount points of this process's mount namespace, from /proc/self/mountinfo.
enum MountTable {
    /// Every mount point at or below `directory`, deepest first (the order to unmount in),
    /// or nil when the table cannot be read: callers then assume something is mounted.
    /// The kernel lists canonical paths, so `directory` is resolved first (a caller's
    /// --root under /var/run is /run in the table).
    static func mountPoints(under directory: String) -> [String]? {
        guard let data = snapshot(), !data.isEmpty else { return nil }
        let resolved = canonical(directory)
        let prefix = resolved.hasSuffix("/") ? resolved : resolved + "/"
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 4 else { return nil }
            let point = unescape(fields[4])
            return point == resolved || point.hasPrefix(prefix) ? point : nil
        }.sorted { ($0.utf8.count, $1) > ($1.utf8.count, $0) }
    }

    /// /proc/<process>/mountinfo, read to its end (the kernel hands it out a page at a
    /// time); nil if it cannot be read or passes 16 MiB.
    static func snapshot(process: String = "self") -> [UInt8]? {
        let fd = open("/proc/\(process)/mountinfo", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var table: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0, table.count + count <= 16 << 20 else { return nil }
            if count == 0 { return table }
            table += chunk.prefix(count)
        }
    }

    /// Whether nothing is mounted at or below `directory` (false when that is unknown).
    static func isUnmounted(_ directory: String) -> Bool { mountPoints(under: directory)?.isEmpty ?? false }

    /// The path with every symlink resolved; as given when it does not exist.
    static func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The kernel writes space, tab, newline and backslash in a path as \ and three octal digits.
    static func unescape(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        let raw = Array(field.utf8)
        var index = 0
        while index < raw.count {
            if raw[index] == UInt8(ascii: "\\"), index + 3 < raw.count {
                let digits = raw[(index + 1)...(index + 3)]
                if digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "7")).contains($0) }) {
                    // Three octal digits are at most 0o777: the sum is kept in a UInt16.
                    bytes.append(UInt8(truncatingIfNeeded: digits.reduce(UInt16(0)) { $0 * 8 + UInt16($1 - UInt8(ascii: "0")) }))
                    index += 4
                    continue
                }
            }
            bytes.append(raw[index])
            index += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
