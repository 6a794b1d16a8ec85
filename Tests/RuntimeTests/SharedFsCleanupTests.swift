import Foundation
import Glibc
import LinuxSupport
@testable import Runtime
import TestSupport
import Testing

/// What delete leaves of a sandbox's virtio-fs share when the create that made it died
/// before its VM ever connected (a SIGKILL between the share and the monitor): nothing,
/// with Debian's virtiofsd and real mounts, and the rootfs and the volume keep their data.
@Suite struct SharedFsCleanupTests {
    @Test func forcedDeleteKillsTheDaemonAndUnmountsTheShareKeepingTheData() throws {
        guard FileManager.default.isExecutableFile(atPath: Virtiofsd.path) else { try Fixtures.missing("virtiofsd (\(Virtiofsd.path))") }
        let scratch = try Fixtures.scratchDirectory("share-cleanup")
        let rootfs = scratch + "/rootfs", volume = scratch + "/volume"
        for directory in [rootfs + "/etc", volume] { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        try "root:x:0:\n".write(toFile: rootfs + "/etc/group", atomically: true, encoding: .utf8)
        try "data\n".write(toFile: volume + "/file", atomically: true, encoding: .utf8)

        let store = StateStore(root: scratch + "/root")
        let id = "share-\(UInt32.random(in: 0 ... .max))"
        var config = RuntimeConfiguration()
        config.hypervisor.virtioFsDaemon = Virtiofsd.path
        let lifecycle = ContainerLifecycle(context: RuntimeContext(store: store, config: config, executable: "/bin/false",
                                                                   globalArguments: [], warn: { _ in }, debug: { _ in }))
        var record = ContainerRecord(id: id, bundle: scratch, rootfs: rootfs, stateDir: try store.createDirectory(for: id),
                                     socketDir: store.socketDirectory(of: id), annotations: nil)
        try SocketDirectory(path: record.socketDir, owner: record.stateDir).claim()
        try store.save(record)
        try lifecycle.startSharedFs(&record, rootfs: rootfs, volumes: [
            GuestSpec.SharedVolume(hostPath: volume, name: "\(id)/volume-0-volume", readOnly: true, recursive: false),
        ])
        // What the state file says is what delete will find.
        let saved = try store.load(id)
        let daemon = try #require(saved.virtiofsd)
        #expect(FileManager.default.fileExists(atPath: saved.sharedDirectoryPath) && daemon.isAlive)
        // The binds and staging directories, the share, two binds and their copies in the share.
        #expect(MountTable.mountPoints(under: record.stateDir)?.count == 7)
        #expect((try? String(contentsOfFile: record.sharedDirectoryPath + "/\(id)/rootfs/etc/group", encoding: .utf8)) == "root:x:0:\n")

        try lifecycle.delete(id: id, force: true)
        #expect(VirtiofsDaemon.groupMembers(daemon.pid).isEmpty, "virtiofsd's group outlived delete")
        #expect(MountTable.isUnmounted(record.stateDir))
        #expect(!FileManager.default.fileExists(atPath: record.stateDir))
        #expect(!FileManager.default.fileExists(atPath: record.virtiofsSocketPath))
        #expect((try? String(contentsOfFile: rootfs + "/etc/group", encoding: .utf8)) == "root:x:0:\n")
        #expect((try? String(contentsOfFile: volume + "/file", encoding: .utf8)) == "data\n")
    }
}
