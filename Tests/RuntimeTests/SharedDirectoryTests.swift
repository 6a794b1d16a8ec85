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
        #expect(MountTable.isUnmounted(path))
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
        #expect(MountTable.isUnmounted(path))
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

    /// A volume whose source is a shared mount with a submount, bound recursively and
    /// read-only: the submount is read-only in the share too, the share's own directory
    /// is read-only once sealed, and removing the share leaves the host's mounts alone.
    @Test func anRbindOfASharedMountIsReadOnlyThroughoutAndLeavesTheHostsMounts() throws {
        let scratch = try Fixtures.scratchDirectory("share")
        let source = scratch + "/source"
        try FileManager.default.createDirectory(atPath: source + "/sub", withIntermediateDirectories: true)
        // The source: its own shared peer group (as / is under systemd), with a tmpfs in it.
        #expect(mount(source, source, nil, UInt(MS_BIND), nil) == 0 && mount(nil, source, nil, UInt(MS_SHARED), nil) == 0)
        #expect(mount("tmpfs", source + "/sub", "tmpfs", 0, "size=1m") == 0)
        defer {
            umount2(source + "/sub", Int32(MNT_DETACH))
            umount2(source, Int32(MNT_DETACH))
        }
        try "host\n".write(toFile: source + "/sub/file", atomically: false, encoding: .utf8)

        let path = scratch + "/shared"
        let share = try SharedDirectory.create(at: path)
        defer { try? SharedDirectory.remove(at: path) }
        try share.bind(source, at: "c/volume-0-source", readOnly: true, recursive: true)
        try share.seal()
        #expect((try? String(contentsOfFile: path + "/c/volume-0-source/sub/file", encoding: .utf8)) == "host\n")
        for file in [path + "/c/volume-0-source/sub/new", path + "/c/volume-0-source/new", path + "/stray"] {
            let fd = open(file, O_WRONLY | O_CREAT, 0o644)
            let writeErrno = errno
            if fd >= 0 { close(fd) }
            #expect(fd < 0 && writeErrno == EROFS, "\(file) must not be writable")
        }
        try SharedDirectory.remove(at: path)
        #expect(MountTable.isUnmounted(path))
        #expect(MountTable.mountPoints(under: source) == [source + "/sub", source], "the host's own mounts stay")
        #expect((try? String(contentsOfFile: source + "/sub/file", encoding: .utf8)) == "host\n")
    }

    /// A state root reached through a symlink (/var/run is /run): mountinfo lists the
    /// canonical path, and removal still finds and unmounts every bind.
    @Test func aShareReachedThroughASymlinkIsStillUnmountedBeforeRemoval() throws {
        let scratch = try Fixtures.scratchDirectory("share")
        let volume = scratch + "/volume"
        try FileManager.default.createDirectory(atPath: scratch + "/real", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: volume + "/empty", withIntermediateDirectories: true)
        try "data\n".write(toFile: volume + "/file", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: scratch + "/link", withDestinationPath: scratch + "/real")
        let path = scratch + "/link/shared"
        let share = try SharedDirectory.create(at: path)
        defer { try? SharedDirectory.remove(at: path) }
        try share.bind(volume, at: "c/volume-0-volume", readOnly: false, recursive: false)
        #expect(MountTable.mountPoints(under: path)?.count == 2)
        try SharedDirectory.remove(at: path)
        #expect(MountTable.isUnmounted(scratch + "/real"))
        #expect(FileManager.default.fileExists(atPath: volume + "/empty"), "an empty directory in a volume is the volume's")
        #expect((try? String(contentsOfFile: volume + "/file", encoding: .utf8)) == "data\n")
    }

    @Test func mountinfoEscapesAreDecoded() {
        #expect(MountTable.unescape("/run/a\\040b\\011c\\134d") == "/run/a b\tc\\d")
        #expect(MountTable.unescape("/trailing\\04") == "/trailing\\04")
        #expect(MountTable.unescape("/not\\999octal") == "/not\\999octal")
    }
}
