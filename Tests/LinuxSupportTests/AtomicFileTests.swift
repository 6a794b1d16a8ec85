import Foundation
import Glibc
@testable import LinuxSupport
import TestSupport
import Testing

private struct FillFailed: Error {}

@Suite struct AtomicFileTests {
    @Test func replacesWholeAndLeavesNoTemporary() throws {
        let dir = try Fixtures.scratchDirectory("atomic")
        let path = dir + "/state.json"
        try AtomicFile.write(Data("one".utf8), to: path)
        try AtomicFile.write(Data("two".utf8), to: path, mode: 0o644)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "two")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["state.json"])
        // A failing fill leaves the old file and no temporary.
        #expect(throws: FillFailed.self) {
            try AtomicFile.replace(path) { _, _ in throw FillFailed() }
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "two")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["state.json"])
    }

    /// The temporary is random and never follows a link planted beside the target: the old
    /// fixed name (`state.json.tmp-<pid>`) could be pre-created as a link to any file.
    @Test func temporaryNamesAreRandomExclusiveAndNotFollowed() throws {
        let dir = try Fixtures.scratchDirectory("atomic")
        let victim = dir + "/victim"
        try "precious".write(toFile: victim, atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: dir + "/state.json.tmp-\(getpid())", withDestinationPath: victim)
        let first = try AtomicFile.createTemporary(for: dir + "/state.json", mode: 0o600)
        let second = try AtomicFile.createTemporary(for: dir + "/state.json", mode: 0o600)
        defer { close(first.fd); close(second.fd); unlink(first.path); unlink(second.path) }
        #expect(first.path != second.path)
        let name = (first.path as NSString).lastPathComponent
        #expect(AtomicFile.isTemporary(name), "\(name)")
        #expect(name.hasPrefix(".state.json.tmp-"))
        try AtomicFile.write(Data("new".utf8), to: dir + "/state.json")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious")
    }

    /// A temporary whose writer died is removed; one a live writer holds (locked) or one
    /// just made is not.
    @Test func abandonedTemporariesAreTheOnlyOnesSwept() throws {
        let dir = try Fixtures.scratchDirectory("atomic")
        let live = try AtomicFile.createTemporary(for: dir + "/a", mode: 0o600)
        defer { close(live.fd) }
        let dead = try AtomicFile.createTemporary(for: dir + "/b", mode: 0o600)
        close(dead.fd)  // its writer is gone: the lock with it
        let fresh = try AtomicFile.createTemporary(for: dir + "/c", mode: 0o600)
        close(fresh.fd)
        Fixtures.backdate(live.path, seconds: 3600)
        Fixtures.backdate(dead.path, seconds: 3600)
        try "x".write(toFile: dir + "/a", atomically: false, encoding: .utf8)
        Fixtures.backdate(dir + "/a", seconds: 3600)  // not a temporary: never touched
        let removed = AtomicFile.removeAbandonedTemporaries(in: dir)
        #expect(removed == [(dead.path as NSString).lastPathComponent])
        #expect(FileManager.default.fileExists(atPath: live.path))
        #expect(FileManager.default.fileExists(atPath: fresh.path))
        #expect(FileManager.default.fileExists(atPath: dir + "/a"))
    }
}
