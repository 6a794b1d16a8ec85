import Foundation

/// Runs a real process with a deadline and captures its output: how integration tests
/// drive `kata-vmm`, build scripts and system tools.
public enum Command {
    public struct Result: Sendable {
        public var status: Int32
        /// True when the deadline passed and the process was sent SIGTERM (then SIGKILL).
        public var timedOut: Bool
        public var stdout: String
        public var stderr: String
        public var elapsed: Double
    }

    public static func run(_ executable: String, _ arguments: [String], stdin: String? = nil,
                           timeout: Double = 120, environment: [String: String]? = nil) throws -> Result {
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
        let deadline = start.addingTimeInterval(timeout)
        while process.isRunning {
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
        return Result(status: process.terminationStatus, timedOut: timedOut, stdout: out, stderr: err,
                      elapsed: Date().timeIntervalSince(start))
    }
}
