#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Lines on stderr (the console when the agent is PID 1): "kata-agent: ...".
/// `fatal` prints a panic line and, as PID 1, powers the VM off (a VM whose agent
/// cannot continue is useless, and a kernel panic on init exit would hide the cause).
struct AgentLog: Sendable {
    var verbose: Bool

    func info(_ message: @autoclosure () -> String) {
        AgentLog.write("kata-agent: \(message())\n")
    }

    func error(_ message: @autoclosure () -> String) {
        AgentLog.write("kata-agent: error: \(message())\n")
    }

    func debug(_ message: @autoclosure () -> String) {
        if verbose { AgentLog.write("kata-agent: debug: \(message())\n") }
    }

    static func write(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(2, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
    }

    static func fatal(_ message: String) -> Never {
        write("kata-agent: panic: \(message)\n")
        if GuestInit.active { GuestInit.powerOff() }
        exit(1)
    }
}
