import Foundation

/// Runs a real process with a deadline and captures its output: how integration tests
/// drive `kata-vmm`, build scripts and system tools.
public enum Command {
    public struct Result: Sendable {
        public var status: Int32
        /// True when the deadline passed and the process was sent SIGTERM (then SIGKILL).
        public var timedOut: Bool
        /// True when `killOn` appeared in stdout and the process was sent SIGKILL.
        public var killedOnMarker = false
        public var stdout: String
        public var stderr: String
        public var elapsed: Double
    }

    /// `killOn`: SIGKILL the process as soon as this text appears on its stdout (crash tests).
    public static func run(_ executable: String, _ arguments: [String], stdin: String? = nil,
                           timeout: Double = 120, environment: [String: String]? = nil,
                           killOn marker: String? = nil) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let outFile = Fixtures.scratch.appendingPathComponent("out-\(UUID().uuidString)")
        let errFile = Fixtures.scratch.appendingPathComponent("err-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: outFile.path, contents: nil)
        FileManager.default.createFile(atPath: errFile.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outFile)
            try? FileManager.default.removeItem(at: errFile)
        }
        process.standardOutput = try FileHandle(forWritingTo: outFile)
        process.standardError = try FileHandle(forWritingTo: errFile)
        let input = Pipe()
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        let start = Date()
        try process.run()
        if let stdin {
            input.fileHandleForWriting.write(stdin.data(using: .utf8)!)
            try? input.fileHandleForWriting.close()
        }
        var timedOut = false
        var killedOnMarker = false
        let deadline = start.addingTimeInterval(timeout)
        let reader = marker == nil ? nil : try FileHandle(forReadingFrom: outFile)
        var seen = Data()
        while process.isRunning {
            if let marker, let reader {
                seen.append(reader.availableData)
                if String(decoding: seen, as: UTF8.self).contains(marker) {
                    kill(process.processIdentifier, SIGKILL)
                    killedOnMarker = true
                    break
                }
            }
            if Date() > deadline {
                timedOut = true
                process.terminate()
                let grace = Date().addingTimeInterval(5)
                while process.isRunning && Date() < grace { usleep(20_000) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                break
            }
            usleep(10_000)
        }
        process.waitUntilExit()
        let out = (try? String(contentsOf: outFile, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: errFile, encoding: .utf8)) ?? ""
        return Result(status: process.terminationStatus, timedOut: timedOut, killedOnMarker: killedOnMarker,
                      stdout: out, stderr: err, elapsed: Date().timeIntervalSince(start))
    }
}

/// A helper process running beside a test (a server, a client, a VM whose console the test
/// watches), its output read while it runs or collected at the end.
public final class BackgroundCommand {
    private let process = Process()
    private let outFile: URL

    public init(_ executable: String, _ arguments: [String]) throws {
        outFile = Fixtures.scratch.appendingPathComponent("bg-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: outFile.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let handle = try FileHandle(forWritingTo: outFile)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var isRunning: Bool { process.isRunning }
    public var pid: Int32 { process.processIdentifier }
    /// Everything it has printed so far (a VM's console, read while it runs).
    public var output: String { (try? String(contentsOf: outFile, encoding: .utf8)) ?? "" }

    /// The exit status, or nil if it is still running after `timeout` seconds.
    public func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// SIGTERM, `grace` seconds to end cleanly (a VMM tears its VM down), then SIGKILL.
    public func stop(grace: Double = 5) {
        guard process.isRunning else { return }
        process.terminate()
        if waitForExit(timeout: grace) == nil { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Waits up to `timeout` seconds (then stops it) and returns everything it printed.
    public func finish(timeout: Double = 10) -> String {
        if waitForExit(timeout: timeout) == nil { stop(grace: 0.2) }
        process.waitUntilExit()
        defer { try? FileManager.default.removeItem(at: outFile) }
        return output
    }

    deinit { _ = finish(timeout: 0) }
}
