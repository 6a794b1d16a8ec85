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
        let share = try SharedDirectory.create(at: path)
        try "stray\n".write(toFile: share.bindsPath + "/stray", atomically: true, encoding: .utf8)
        #expect((try? String(contentsOfFile: path + "/stray", encoding: .utf8)) == "stray\n")  // served as the share's
        #expect(throws: RuntimeError.self) { try SharedDirectory.remove(at: path) }
        #expect(MountTable.isUnmounted(path) && MountTable.isUnmounted(share.bindsPath))
        #expect((try? String(contentsOfFile: share.bindsPath + "/stray", encoding: .utf8)) == "stray\n")
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
    /// is read-only, and removing the share leaves the host's mounts alone.
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

extension SharedDirectoryTests {
    /// Containers and volumes join a running sandbox: what is bound after Debian's
    /// virtiofsd started reaches its mount namespace (seen through its root), read-only
    /// where asked, and an unbind leaves it too, while the host's data stays.
    @Test func bindsAfterTheDaemonStartedReachItAndLeaveIt() throws {
        guard FileManager.default.isExecutableFile(atPath: Virtiofsd.path) else { try Fixtures.missing("virtiofsd (\(Virtiofsd.path))") }
        let scratch = try Fixtures.scratchDirectory("share-live")
        let early = scratch + "/early", late = scratch + "/late", config = scratch + "/config"
        for (directory, text) in [(early, "early"), (late, "late"), (config, "config")] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try "\(text)\n".write(toFile: directory + "/file", atomically: true, encoding: .utf8)
        }
        let path = scratch + "/shared"
        let share = try SharedDirectory.create(at: path)
        defer { try? SharedDirectory.remove(at: path) }
        try share.bind(early, at: "pause/rootfs", readOnly: false, recursive: true)
        let options = VirtiofsDaemon.Options(executable: Virtiofsd.path, source: path, socketPath: scratch + "/vfs.sock", cache: "auto", extraArgs: [])
        let daemon = try VirtiofsDaemon.start(options, logPath: scratch + "/vfs.log") { _ in }
        defer { VirtiofsDaemon.stop(daemon, executable: Virtiofsd.path) }
        // Debian's virtiofsd enters its sandbox once a VMM connects: a probe guest with the
        // share as its virtio-fs device.
        let vmm = try BackgroundCommand(Fixtures.kataVmm.path, ["--kernel", try Fixtures.probeGuest().path, "--memory", "64",
                                                                 "--cmdline", "console=ttyS0 probe.mode=count", "--serial", "none",
                                                                 "--fs", "tag=share,socket=\(options.socketPath)"])
        defer { vmm.stop() }
        // The process that serves: the daemon's child, in its own mount namespace rooted at the share.
        var server: Int32?
        for _ in 0..<100 where server == nil {
            server = VirtiofsDaemon.groupMembers(daemon.pid).first { pid in
                pid != daemon.pid && (try? String(contentsOfFile: "/proc/\(pid)/root/pause/rootfs/file", encoding: .utf8)) == "early\n"
            }
            if server == nil { usleep(50_000) }
        }
        let served = try #require(server, "virtiofsd's serving process never showed the share: \(vmm.output.suffix(2000))")
        let view = "/proc/\(served)/root"

        try share.bind(late, at: "app/rootfs", readOnly: false, recursive: true)
        try share.bind(config, at: "app/volume-0-config", readOnly: true, recursive: false)
        #expect((try? String(contentsOfFile: view + "/app/rootfs/file", encoding: .utf8)) == "late\n", "a bind made after the daemon started")
        #expect((try? String(contentsOfFile: view + "/app/volume-0-config/file", encoding: .utf8)) == "config\n")
        try "through the daemon\n".write(toFile: view + "/app/rootfs/new", atomically: false, encoding: .utf8)
        #expect((try? String(contentsOfFile: late + "/new", encoding: .utf8)) == "through the daemon\n")
        for file in [view + "/app/volume-0-config/file", view + "/stray", path + "/app/volume-0-config/file"] {
            let fd = open(file, O_WRONLY | O_CREAT, 0o644)
            let writeErrno = errno
            if fd >= 0 { close(fd) }
            #expect(fd < 0 && writeErrno == EROFS, "\(file) must be read-only")
        }

        try share.unbind("app/rootfs")
        try share.unbind("app/volume-0-config")
        #expect(!FileManager.default.fileExists(atPath: view + "/app/rootfs/file"), "an unbind reaches the daemon")
        #expect((try? String(contentsOfFile: view + "/pause/rootfs/file", encoding: .utf8)) == "early\n")
        #expect((try? String(contentsOfFile: late + "/file", encoding: .utf8)) == "late\n")
        #expect((try? String(contentsOfFile: config + "/file", encoding: .utf8)) == "config\n")
    }
}

extension SharedDirectoryTests {
    /// A read-only volume keeps its source's nosuid, nodev and noexec (a bare read-only
    /// remount would drop them), and a mount the host makes under its source afterwards
    /// does not come in writable: the volume is what was there when it was bound.
    @Test func aReadOnlyVolumeKeepsItsFlagsAndTakesNoLaterMounts() throws {
        let scratch = try Fixtures.scratchDirectory("share-flags")
        let source = scratch + "/source"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        #expect(mount("tmpfs", source, "tmpfs", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), "size=1m") == 0)
        #expect(mount(nil, source, nil, UInt(MS_SHARED), nil) == 0)
        try FileManager.default.createDirectory(atPath: source + "/later", withIntermediateDirectories: true)
        defer {
            umount2(source + "/later", Int32(MNT_DETACH))
            umount2(source, Int32(MNT_DETACH))
        }
        let path = scratch + "/shared"
        let share = try SharedDirectory.create(at: path)
        defer { try? SharedDirectory.remove(at: path) }
        try share.bind(source, at: "c/volume-0-source", readOnly: true, recursive: true)
        var info = statvfs()
        #expect(statvfs(path + "/c/volume-0-source", &info) == 0)
        for (bit, name) in [(UInt(1), "read-only"), (2, "nosuid"), (4, "nodev"), (8, "noexec")] {
            #expect(UInt(info.f_flag) & bit != 0, "the served volume lost \(name)")
        }
        // The host mounts under the source after the bind: not in the share.
        #expect(mount("tmpfs", source + "/later", "tmpfs", 0, "size=1m") == 0)
        #expect(MountTable.mountPoints(under: path + "/c/volume-0-source")?.count == 1, "\(MountTable.mountPoints(under: path) ?? [])")
        let fd = open(path + "/c/volume-0-source/later/new", O_WRONLY | O_CREAT, 0o644)
        let writeErrno = errno
        if fd >= 0 { close(fd) }
        #expect(fd < 0 && writeErrno == EROFS, "a later host mount came in writable")
    }
}
