/// Memory figures of a process from /proc/PID/smaps_rollup and /proc/PID/smaps, in KiB.
public struct ProcessMemory: Codable, Equatable, Sendable {
    public var rssKiB: Int
    public var pssKiB: Int
    public var anonymousKiB: Int
    /// Resident KiB of the guest RAM mapping(s): what the guest touched, not VMM overhead.
    public var guestResidentKiB: Int

    /// RSS and PSS without the guest's own pages: the VMM's overhead.
    public var overheadRssKiB: Int { rssKiB - guestResidentKiB }
    public var overheadPssKiB: Int { pssKiB - guestResidentKiB }

    /// Parses the `Key:   N kB` lines of smaps_rollup.
    public static func parseRollup(_ text: String) -> [String: Int] {
        var values: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count >= 2, parts[0].hasSuffix(":"), let value = Int(parts[1]) else { continue }
            values[String(parts[0].dropLast())] = value
        }
        return values
    }

    /// Sums the Rss of the anonymous mappings in /proc/PID/smaps sized like guest RAM
    /// (between half of `guestKiB` and `guestKiB` + 8 MiB, which covers QEMU's alignment
    /// slack): the pages the guest touched, counted apart from the VMM's own.
    public static func guestResident(smaps text: String, guestKiB: Int) -> Int {
        var total = 0
        var mappingIsGuest = false
        for line in text.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let first = parts.first else { continue }
            if first.contains("-") && !first.hasSuffix(":") {
                // A mapping header: "start-end perms offset dev inode [path]"; anonymous if no path.
                mappingIsGuest = false
                let range = first.split(separator: "-")
                if range.count == 2, let start = UInt64(range[0], radix: 16), let end = UInt64(range[1], radix: 16) {
                    let kib = Int((end - start) / 1024)
                    let anonymous = parts.count < 6
                    mappingIsGuest = anonymous && guestKiB > 0 && kib >= guestKiB / 2 && kib <= guestKiB + 8192
                }
            } else if mappingIsGuest, first == "Rss:", parts.count >= 2, let value = Int(parts[1]) {
                total += value
            }
        }
        return total
    }
}
