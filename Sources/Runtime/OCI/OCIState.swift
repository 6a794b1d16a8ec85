import Foundation
import OCI

/// The container state as the runtime spec defines it (and as `runc state` prints it, with
/// runc's extra `rootfs`, `created` and `owner`): what `state` prints and what hooks read
/// on stdin.
public struct OCIState: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable {
        case creating, created, running, stopped, paused
    }

    public var ociVersion: String
    public var id: String
    public var status: Status
    /// The process callers wait on: 0 once stopped (runc prints 0 for stopped containers).
    public var pid: Int32
    public var bundle: String
    public var rootfs: String
    public var created: String
    public var owner: String
    public var annotations: [String: String]?

    public init(id: String, status: Status, pid: Int32, bundle: String, rootfs: String, created: String,
                annotations: [String: String]?) {
        self.ociVersion = Spec.version
        self.id = id
        self.status = status
        self.pid = pid
        self.bundle = bundle
        self.rootfs = rootfs
        self.created = created
        self.owner = ""
        self.annotations = annotations
    }

    public func jsonData(pretty: Bool = false) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// RFC 3339 timestamps with nanoseconds, as runc writes `created`.
public enum Timestamp {
    public static func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), spec.tv_nsec)
    }
}
