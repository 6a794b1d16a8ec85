import Foundation
import Glibc

/// A VMM process run for a measurement: spawned directly (posix_spawn) so that its own
/// CPU time comes back from wait4, with its output read line by line and time-stamped.
public final class MeasuredProcess {
    public struct Line: Sendable {
        public var seconds: Double
        public var text: String
    }

    public struct Outcome: Sendable {
        public var lines: [Line]
        public var exitStatus: Int32
        public var cpuSeconds: Double
        public var wallSeconds: Double
        public var timedOut: Bool

        public func first(containing marker: String) -> Line? { lines.first { $0.text.contains(marker) } }
    }

    public let pid: pid_t
    private let output: Int32
    private let start: ContinuousClock.Instant
    private var lines: [Line] = []
    private var partial = [UInt8]()

    public init(_ executable: String, _ arguments: [String]) throws {
        var pipeFds: [Int32] = [0, 0]
        guard pipe(&pipeFds) == 0 else { throw BenchError("pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeFds[1], 2)
        posix_spawn_file_actions_addclose(&actions, pipeFds[0])
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var child: pid_t = 0
        start = ContinuousClock.now
        let rc = posix_spawn(&child, executable, &actions, nil, argv, environ)
        close(pipeFds[1])
        guard rc == 0 else {
            close(pipeFds[0])
            throw BenchError("cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        pid = child
        output = pipeFds[0]
    }

    deinit { close(output) }

    private var elapsed: Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Reads output until a line contains `marker` (returned) or `timeout` passes (nil).
    @discardableResult
    public func waitFor(_ marker: String, timeout: Double) -> Line? {
        if let line = lines.first(where: { $0.text.contains(marker) }) { return line }
        while elapsed < timeout {
            guard readSome(timeoutMs: 50) else { return nil }
            if let line = lines.last(where: { $0.text.contains(marker) }) { return line }
        }
        return nil
    }

    /// false at end of output.
    private func readSome(timeoutMs: Int32) -> Bool {
        var poller = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, timeoutMs) > 0 else { return true }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = read(output, &buffer, buffer.count)
        guard n > 0 else { return false }
        let now = elapsed
        for byte in buffer[0..<n] {
            if byte == UInt8(ascii: "\n") {
                lines.append(Line(seconds: now, text: String(decoding: partial, as: UTF8.self)))
                partial.removeAll(keepingCapacity: true)
            } else if byte != UInt8(ascii: "\r") {
                partial.append(byte)
            }
        }
        return true
    }

    /// Sends `signal` (if given), drains output, and reaps the process with its CPU time.
    public func finish(signal: Int32? = nil, timeout: Double = 30) -> Outcome {
        if let signal { kill(pid, signal) }
        var timedOut = false
        while readSome(timeoutMs: 50) {
            if elapsed > timeout {
                timedOut = true
                kill(pid, SIGKILL)
            }
        }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        let cpu = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        let exited = status & 0x7F == 0
        return Outcome(lines: lines, exitStatus: exited ? (status >> 8) & 0xFF : 128 + (status & 0x7F),
                       cpuSeconds: cpu, wallSeconds: elapsed, timedOut: timedOut)
    }

    /// The process's memory now, guest RAM of `guestMiB` told apart.
    public func memory(guestMiB: Int) -> ProcessMemory? {
        guard let rollup = Self.readProcFile("/proc/\(pid)/smaps_rollup"),
              let smaps = Self.readProcFile("/proc/\(pid)/smaps") else { return nil }
        let values = ProcessMemory.parseRollup(rollup)
        return ProcessMemory(rssKiB: values["Rss"] ?? 0, pssKiB: values["Pss"] ?? 0, anonymousKiB: values["Anonymous"] ?? 0,
                             guestResidentKiB: ProcessMemory.guestResident(smaps: smaps, guestKiB: guestMiB * 1024))
    }
}

extension MeasuredProcess {
    /// Reads a /proc file to its end (they report size 0, so read until EOF).
    static func readProcFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data += buffer[0..<n]
        }
        return String(decoding: data, as: UTF8.self)
    }
}

public struct BenchError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
