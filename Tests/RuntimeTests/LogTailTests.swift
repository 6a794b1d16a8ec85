import Foundation
@testable import Runtime
import Testing

@Suite struct LogTailTests {
    @Test func aSerialConsolesCRLFLinesAreCounted() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("logtail-\(UInt32.random(in: 0 ... .max))").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let lines = (1...40).map { "[ \($0)] line \($0)" }
        try Data((lines.joined(separator: "\r\n") + "\r\n").utf8).write(to: URL(fileURLWithPath: path))
        let tail = try #require(LogTail.lastLines(of: path, count: 3))
        #expect(tail == "[ 38] line 38\n[ 39] line 39\n[ 40] line 40")
    }

    @Test func aMissingOrEmptyLogHasNoTail() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("logtail-\(UInt32.random(in: 0 ... .max))").path
        #expect(LogTail.lastLines(of: path, count: 3) == nil)
        FileManager.default.createFile(atPath: path, contents: Data())
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(LogTail.lastLines(of: path, count: 3) == nil)
    }
}
