import Foundation
import Glibc

extension Fixtures {
    /// A new empty directory below the scratch area, named `prefix-<8 hex>`.
    public static func scratchDirectory(_ prefix: String) throws -> String {
        let path = scratch.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Sets a file's access and modification times `seconds` into the past (a file left by
    /// a writer that died a while ago).
    public static func backdate(_ path: String, seconds: Int) {
        var times = [timespec(tv_sec: time(nil) - seconds, tv_nsec: 0), timespec(tv_sec: time(nil) - seconds, tv_nsec: 0)]
        _ = utimensat(AT_FDCWD, path, &times, 0)
    }
}
