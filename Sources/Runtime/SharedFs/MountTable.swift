import Foundation

/// The mount points of this process's mount namespace, from /proc/self/mountinfo.
enum MountTable {
    /// Every mount point at or below `directory`, deepest first (the order to unmount in).
    static func mountPoints(under directory: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: "/proc/self/mountinfo") else { return [] }
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 4 else { return nil }
            let point = unescape(fields[4])
            return point == directory || point.hasPrefix(prefix) ? point : nil
        }.sorted { ($0.utf8.count, $1) > ($1.utf8.count, $0) }
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
