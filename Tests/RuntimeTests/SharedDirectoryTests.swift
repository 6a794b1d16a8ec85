import Foundation
import Glibc
@testable import Runtime
import TestSupport
import Testing

/// The host side of the virtio-fs share, with real mounts (the tests run as root, as the
/// runtime does).
@Suite struct SharedDirectoryTests {
    @Test func bindsAreLiveReadOnlyIsEnforcedAndRemovalKeepsTheData() throws {
        let scratch = try Fixtures.scratchDirectory("share")
        let volume = scratch + "/volume", readOnly = scratch + "/config"
        for directory in [volume, readOnly] { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        try "data\n".write(toFile: volume + "/file", atomically: true, encoding: .utf8)
        try "config\n".write(toFile: readOnly + "/file", atomically: true, encoding: .utf8)
        let path = scratch + "/shared"
        let share = try SharedDirectory.create(at: path)
        defer { try? SharedDirectory.remove(at: path) }
        try share.bind(volume, at: "c1/volume-0-volume", readOnly: false, recursive: true)
        try share.bind(readOnly, at: "c1/volume-1-config", readOnly: true, recursive: false)
        #expect(MountTable.mountPoints(under: path) == [path + "/c1/volume-0-volume", path + "/c1/volume-1-config", path])

        #expect((try? String(contentsOfFile: path + "/c1/volume-0-volume/file", encoding: .utf8)) == "data\n")
        try "written\n".write(toFile: path + "/c1/volume-0-volume/new", atomically: false, encoding: .utf8)
        #expect((try? String(contentsOfFile: volume + "/new", encoding: .utf8)) == "written\n")
        let fd = open(path + "/c1/volume-1-config/file", O_WRONLY)
        let writeErrno = errno
        if fd >= 0 { close(fd) }
        #expect(fd < 0 && writeErrno == EROFS, "a read-only volume must be read-only on the host")

        try SharedDirectory.remove(at: path)
        #expect(MountTable.mountPoints(under: path).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect((try? String(contentsOfFile: volume + "/file", encoding: .utf8)) == "data\n")
        #expect((try? String(contentsOfFile: volume + "/new", encoding: .utf8)) == "written\n")
        #expect((try? String(contentsOfFile: readOnly + "/file", encoding: .utf8)) == "config\n")
        try SharedDirectory.remove(at: path)  // twice: nothing left to do
    }

    /// A file in the share itself (not under a bind) is never deleted: removal says so.
    @Test func aFileInTheShareIsLeftAndReported() throws {
        let scratch = try Fixtures.scratchDirectory("share")
        let path = scratch + "/shared"
        _ = try SharedDirectory.create(at: path)
        try "stray\n".write(toFile: path + "/stray", atomically: true, encoding: .utf8)
        #expect(throws: RuntimeError.self) { try SharedDirectory.remove(at: path) }
        #expect(MountTable.mountPoints(under: path).isEmpty)
        #expect((try? String(contentsOfFile: path + "/stray", encoding: .utf8)) == "stray\n")
    }

    @Test func aMissingSourceIsAnErrorThatNamesIt() throws {
        let scratch = try Fixtures.scratchDirectory("share")
        let path = scratch + "/shared"
        let share = try SharedDirectory.create(at: path)
        defer { try? SharedDirectory.remove(at: path) }
        #expect { try share.bind(scratch + "/absent", at: "c/volume-0-absent", readOnly: false, recursive: false) } throws: { error in
            "\(error)".contains(scratch + "/absent")
        }
    }

    @Test func mountinfoEscapesAreDecoded() {
        #expect(MountTable.unescape("/run/a\\040b\\011c\\134d") == "/run/a b\tc\\d")
        #expect(MountTable.unescape("/trailing\\04") == "/trailing\\04")
        #expect(MountTable.unescape("/not\\999octal") == "/not\\999octal")
    }
}
