import Foundation
import Glibc
import Runtime
import LinuxSupport

/// runc-style logging: `--log FILE` (else stderr) in text (`time="..." level=error
/// msg="..."`) or json (`{"level":"error","msg":"...","time":"..."}`) format; containerd's
/// shim reads the last error from the json log to explain a failure.
struct RuntimeLog {
    let path: String?
    let json: Bool
    let debugEnabled: Bool

    init(_ options: GlobalOptions) {
        path = options.log
        json = options.logFormat == "json"
        debugEnabled = options.debug
    }

    func error(_ message: String) { write("error", message) }
    func warning(_ message: String) { write("warning", message) }
    func info(_ message: String) { write("info", message) }
    func debug(_ message: String) { if debugEnabled { write("debug", message) } }

    func write(_ level: String, _ message: String) {
        let time = Timestamp.now()
        let line: String
        if json {
            let object = ["level": level, "msg": message, "time": time]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            line = String(decoding: data, as: UTF8.self) + "\n"
        } else {
            let escaped = message.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            line = "time=\"\(time)\" level=\(level) msg=\"\(escaped)\"\n"
        }
        var fd = STDERR_FILENO
        var opened = false
        if let path {
            let logFd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            if logFd >= 0 {
                fd = logFd
                opened = true
            }
        }
        _ = try? FileDescriptors.writeAll(fd, Array(line.utf8))
        if opened { close(fd) }
    }
}
