import Foundation
import Glibc

/// Writes metrics as one JSON object per line to the configured file or named pipe, in
/// Firecracker's shape: `utc_timestamp_ms` and sections of counters (`vcpu`, `block`,
/// `block_<id>`, `net`, `net_<id>`, `get_api_requests`, ...). Like Firecracker, each line
/// holds what happened since the previous line (deltas), so lines can be summed; the
/// sections of `stored` values (`api_server`'s start-up times) are written as they are.
final class MetricsWriter {
    static let stored: Set<String> = ["api_server"]
    private var fd: Int32 = -1
    private var previous: [String: UInt64] = [:]
    private(set) var path: String?
    /// Lines that could not be written (a full pipe, a broken file).
    private(set) var failedWrites: UInt64 = 0

    var isOpen: Bool { fd >= 0 }

    func open(_ path: String) throws {
        let newFd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0o644)
        guard newFd >= 0 else {
            throw ApiError("metrics_path: cannot open '\(path)': \(String(cString: strerror(errno)))")
        }
        if fd >= 0 { close(fd) }
        fd = newFd
        self.path = path
    }

    deinit { if fd >= 0 { close(fd) } }

    /// The line for `sections` (section -> counter -> cumulative value), as deltas.
    func line(_ sections: [String: [String: UInt64]], timestampMs: UInt64) -> String {
        var object: [String: JSONValue] = ["utc_timestamp_ms": .int(Int64(clamping: timestampMs))]
        for (section, counters) in sections {
            var fields: [String: JSONValue] = [:]
            for (name, value) in counters {
                let key = section + "." + name
                let delta = Self.stored.contains(section) ? value : value &- (previous[key] ?? 0)
                previous[key] = value
                fields[name] = .int(Int64(clamping: delta))
            }
            object[section] = .object(fields)
        }
        return JSONValue.object(object).serialized + "\n"
    }

    /// Writes one line; a write that would block or fails is counted, never waited for.
    @discardableResult
    func flush(_ sections: [String: [String: UInt64]]) -> Bool {
        guard fd >= 0 else { return false }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var text = line(sections, timestampMs: UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec / 1_000_000))
        let written = text.withUTF8 { buffer in Glibc.write(fd, buffer.baseAddress, buffer.count) }
        if written != text.utf8.count {
            failedWrites += 1
            return false
        }
        return true
    }
}
