import Foundation
import Glibc
import Logging
import Machine

/// Where the VMM's log lines go: stderr until a `logger` configuration (the config file's
/// section or `PUT /logger`) points them at a file or named pipe, with its level. Every
/// `Logger` in the process writes through one sink, so a change applies at once.
public final class LogSink: @unchecked Sendable {  // every var behind `lock` (NSLock)
    public static let shared = LogSink()

    private let lock = NSLock()
    private var fd: Int32 = STDERR_FILENO
    private var level: Logger.Level? = .info
    private var showLevel = true
    private var showOrigin = false
    /// The `module` filter as a prefix of swift-log's file ids ("Devices/VirtioNet").
    private var modulePrefix: String?

    /// The level from `--log-level`, used until a logger configuration arrives.
    public func setDefault(level: Logger.Level) {
        lock.withLock { self.level = level }
    }

    /// Applies Firecracker's logger settings; the file is opened for appending, without
    /// blocking (a named pipe nobody reads must not stall the VMM: lines are dropped).
    public func configure(_ config: VmConfig.LogConfig) throws {
        var newFd = STDERR_FILENO
        if let path = config.path {
            newFd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0o644)
            guard newFd >= 0 else {
                throw ApiError("log_path: cannot open '\(path)': \(String(cString: strerror(errno)))")
            }
        }
        lock.withLock {
            if fd != STDERR_FILENO { close(fd) }
            fd = newFd
            level = Self.level(config.level)
            showLevel = config.showLevel
            showOrigin = config.showOrigin
            modulePrefix = config.module?.replacingOccurrences(of: "::", with: "/")
        }
    }

    static func level(_ level: VmConfig.LogConfig.Level) -> Logger.Level? {
        switch level {
        case .off: return nil
        case .error: return .error
        case .warning: return .warning
        case .info: return .info
        case .debug: return .debug
        case .trace: return .trace
        }
    }

    var effectiveLevel: Logger.Level { lock.withLock { level ?? .critical } }

    func write(level messageLevel: Logger.Level, label: String, message: String, metadata: String,
               file: String, line: UInt) {
        lock.lock()
        defer { lock.unlock() }
        guard let level, messageLevel >= level, Self.origin(file, isIn: modulePrefix) else { return }
        var text = Self.timestamp() + " [" + label + "]"
        if showLevel { text += " " + messageLevel.rawValue.uppercased() }
        if showOrigin { text += " " + (file.split(separator: "/").last.map(String.init) ?? file) + ":\(line)" }
        text += metadata.isEmpty ? "" : " " + metadata
        text += " " + message + "\n"
        text.withUTF8 { buffer in _ = Glibc.write(fd, buffer.baseAddress, buffer.count) }
    }

    /// Whether a line from `file` (swift-log's `#fileID`, "Module/File.swift") passes the
    /// module filter: the same module, or the same file when the filter names one.
    static func origin(_ file: String, isIn prefix: String?) -> Bool {
        guard let prefix else { return true }
        guard file.hasPrefix(prefix) else { return false }
        let rest = file.utf8.dropFirst(prefix.utf8.count)
        return rest.first == UInt8(ascii: "/") || rest.first == UInt8(ascii: ".")
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let micros = String(now.tv_nsec / 1000)
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))."
            + String(repeating: "0", count: 6 - micros.count) + micros
    }
}

/// The swift-log handler that writes through `LogSink.shared`.
public struct VmmLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public let label: String

    public init(label: String) { self.label = label }

    public var logLevel: Logger.Level {
        get { LogSink.shared.effectiveLevel }
        set {}
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let text = merged.isEmpty ? "" : merged.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: " ")
        LogSink.shared.write(level: event.level, label: label, message: event.message.description, metadata: text,
                             file: event.file, line: event.line)
    }
}
