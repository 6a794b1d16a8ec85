import Foundation
import Synchronization

/// Every kata-vmm a test started and has not stopped yet. A test process that ends with
/// some still running (a test that threw before its `stop`, an object kept alive to the
/// end) kills them at exit, so no VMM outlives the tests and takes their CPU.
private let liveVmms = Mutex<Set<Int32>>([])
private let killLiveVmmsAtExit: Void = {
    atexit { liveVmms.withLock { pids in for pid in pids { kill(pid, SIGKILL) } } }
}()

/// A `kata-vmm` process running beside a test: its serial output (stdout) and log
/// (stderr) go to files the test reads while it runs; the API socket is waited for.
public final class VmmProcess {
    public let process = Process()
    public let directory: URL
    public let socket: String
    public let serialFile: URL
    public let logFile: URL

    /// Starts `kata-vmm --api-sock <dir>/api.sock` plus `extra` arguments.
    public init(extra: [String] = [], api: Bool = true) throws {
        directory = Fixtures.scratch.appendingPathComponent("api-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        socket = directory.appendingPathComponent("api.sock").path
        serialFile = directory.appendingPathComponent("serial.out")
        logFile = directory.appendingPathComponent("vmm.log")
        FileManager.default.createFile(atPath: serialFile.path, contents: nil)
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        process.executableURL = Fixtures.kataVmm
        process.arguments = (api ? ["--api-sock", socket] : []) + extra
        process.standardOutput = try FileHandle(forWritingTo: serialFile)
        process.standardError = try FileHandle(forWritingTo: logFile)
        process.standardInput = FileHandle.nullDevice
        _ = killLiveVmmsAtExit
        try process.run()
        let pid = process.processIdentifier
        liveVmms.withLock { _ = $0.insert(pid) }
        if api {
            let deadline = Date().addingTimeInterval(20)
            // The socket file appears at bind(), a moment before listen(): a connect in
            // between is refused, so wait for one that is accepted.
            while (try? UnixHTTPClient(path: socket, timeout: 1)) == nil {
                guard process.isRunning, Date() < deadline else {
                    throw UnixHTTPClient.ClientError(description: "kata-vmm did not open its API socket: \(log)")
                }
                usleep(10_000)
            }
        }
    }

    public var serial: String { (try? String(contentsOf: serialFile, encoding: .utf8)) ?? "" }
    public var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }
    public var serialBytes: Int { (try? FileManager.default.attributesOfItem(atPath: serialFile.path)[.size] as? Int) ?? 0 }

    public func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// The process's VmRSS in KiB (0 once it is gone).
    public var residentKiB: Int {
        let status = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// The highest "probe: tick N" printed so far (probe.mode=count), or -1.
    public var lastTick: Int { lastCount("probe: tick ") }

    /// The last "probe: io done=N" printed so far (probe.mode=io), or -1.
    public var lastIoCount: Int { lastCount("probe: io done=") }

    /// The number after `prefix` on the last whole line that starts with it, or -1. The
    /// serial port delivers a line byte by byte, so a line still being written is skipped.
    func lastCount(_ prefix: String) -> Int {
        let text = serial
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        lines.removeLast()  // after the last newline: empty, or a line not finished yet
        return lines.reversed().lazy.compactMap { line -> Int? in
            guard line.hasPrefix(prefix) else { return nil }
            return Int(line.dropFirst(prefix.count))
        }.first ?? -1
    }

    /// Waits until `condition` holds (polling), up to `timeout` seconds.
    @discardableResult
    public func wait(timeout: Double = 20, _ condition: () -> Bool) -> Bool {
        Poll.until(timeout, every: 20_000, condition)
    }

    /// Waits for the process to end by itself; returns its status, or nil on timeout.
    public func waitForExit(timeout: Double = 30) -> Int32? {
        wait(timeout: timeout) { !process.isRunning }
        guard !process.isRunning else { return nil }
        return process.terminationStatus
    }

    /// SIGTERM, then SIGKILL after a grace period; returns the exit status.
    @discardableResult
    public func stop() -> Int32 {
        if process.isRunning {
            process.terminate()
            if waitForExit(timeout: 10) == nil { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        let pid = process.processIdentifier
        liveVmms.withLock { _ = $0.remove(pid) }
        return process.terminationStatus
    }

    deinit { stop() }
}
