import Foundation
import LinuxSupport
import Glibc
@testable import Runtime
import TestSupport
import Testing

/// The socket directory cannot be taken over: by a colliding id, a planted link, another
/// user's directory; a stale one is reused; removal only for its owner.
@Suite struct SocketDirectoryTests {
    func base() -> String { Fixtures.scratch.appendingPathComponent("sockets-\(UUID().uuidString.prefix(8))").path }

    func owner() throws -> String {
        let path = Fixtures.scratch.appendingPathComponent("owner-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func claimedOnceAndReleasedByItsOwnerOnly() throws {
        let base = base(), first = try owner(), second = try owner()
        let mine = SocketDirectory(path: base + "/abc", owner: first)
        try mine.claim()
        var info = stat()
        #expect(lstat(mine.path, &info) == 0 && info.st_mode & 0o777 == 0o700)
        #expect(mine.recordedOwner() == first)
        // A colliding container (same hashed name) while the first exists: refused.
        let colliding = SocketDirectory(path: base + "/abc", owner: second)
        #expect { try colliding.claim() } throws: { "\($0)".contains("belongs to the container at \(first)") }
        colliding.release()  // not its directory: left alone
        #expect(FileManager.default.fileExists(atPath: mine.path))
        // The first container gone without delete: its directory is stale and is reused.
        try FileManager.default.removeItem(atPath: first)
        FileManager.default.createFile(atPath: mine.path + "/vsock.sock", contents: nil)
        try colliding.claim()
        #expect(colliding.recordedOwner() == second)
        #expect(try FileManager.default.contentsOfDirectory(atPath: mine.path) == ["owner"])
        mine.release()
        #expect(FileManager.default.fileExists(atPath: mine.path))
        colliding.release()
        #expect(!FileManager.default.fileExists(atPath: mine.path))
    }

    @Test func linksForeignOwnersAndOpenModesAreRefused() throws {
        let base = base(), me = try owner()
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        chmod(base, 0o700)
        let target = try owner()
        try FileManager.default.createSymbolicLink(atPath: base + "/link", withDestinationPath: target)
        #expect { try SocketDirectory(path: base + "/link", owner: me).claim() } throws: { "\($0)".contains("is not a directory") }

        mkdir(base + "/open", 0o700)
        chmod(base + "/open", 0o777)
        #expect { try SocketDirectory(path: base + "/open", owner: me).claim() } throws: { "\($0)".contains("mode 777") }

        mkdir(base + "/unmarked", 0o700)
        FileManager.default.createFile(atPath: base + "/unmarked/sock", contents: nil)
        #expect { try SocketDirectory(path: base + "/unmarked", owner: me).claim() } throws: { "\($0)".contains("without an owner file") }

        try #require(geteuid() == 0, "the foreign-owner case needs root to chown (the runtime tests run as root)")
        mkdir(base + "/foreign", 0o700)
        chown(base + "/foreign", 65534, 65534)
        #expect { try SocketDirectory(path: base + "/foreign", owner: me).claim() } throws: { "\($0)".contains("owned by uid 65534") }
        // A socket base open to other users is refused too.
        let openBase = self.base()
        try FileManager.default.createDirectory(atPath: openBase, withIntermediateDirectories: true)
        chmod(openBase, 0o777)
        #expect { try SocketDirectory(path: openBase + "/x", owner: me).claim() } throws: { "\($0)".contains("socket base directory") }
    }

    /// delete --force of a missing id removes only its own socket directory, never the
    /// live one of a container whose name hashes the same.
    @Test func forcedDeleteOfAMissingIdLeavesACollidingContainersSockets() throws {
        let base = base()
        let store = StateStore(root: Fixtures.scratch.appendingPathComponent("root-\(UUID().uuidString.prefix(8))").path, socketBase: base)
        let live = try owner()
        let path = store.socketDirectory(of: "ghost")
        try SocketDirectory(path: path, owner: live).claim()
        let lifecycle = ContainerLifecycle(context: RuntimeContext(store: store, config: RuntimeConfiguration(),
                                                                   executable: "/bin/false", globalArguments: [],
                                                                   warn: { _ in }, debug: { _ in }))
        try makeDirectories(store.directory(of: "ghost"), mode: 0o711)  // a half-made create: no state.json
        try lifecycle.delete(id: "ghost", force: true)
        #expect(!FileManager.default.fileExists(atPath: store.directory(of: "ghost")))
        #expect(FileManager.default.fileExists(atPath: path + "/owner"))
    }
}
