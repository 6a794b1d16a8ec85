import Foundation
import Glibc
import Runtime
import TestSupport
import Testing
import LinuxSupport

/// The rootfs image: made with mke2fs, copied sparse from the cache when the tree was seen
/// before, made again when the tree changed, and the cache bounded. Real mke2fs, real files;
/// the images' contents read back with debugfs.
@Suite struct RootfsImageTests {
    let directory: String

    init() throws {
        directory = Fixtures.scratch.appendingPathComponent("rootfs-image-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory + "/tree/etc", withIntermediateDirectories: true)
        try "one\n".write(toFile: directory + "/tree/etc/hello", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: directory + "/tree/link", withDestinationPath: "etc/hello")
    }

    func cat(_ image: String, _ path: String) throws -> String {
        try Command.run("/usr/sbin/debugfs", ["-R", "cat \(path)", image], timeout: 30).stdout
    }

    func allocated(_ path: String) -> (bytes: Int, size: Int) {
        var info = stat()
        guard stat(path, &info) == 0 else { return (-1, -1) }
        return (Int(info.st_blocks) * 512, Int(info.st_size))
    }

    @Test func cachedWhenUnchangedRemadeWhenChanged() throws {
        let cache = RootfsImageCache(directory: directory + "/cache")
        var log: [String] = []
        _ = try RootfsImage.prepare(rootfs: directory + "/tree", imagePath: directory + "/a.img", cache: cache) { log.append($0) }
        #expect(log.last?.contains("made from") == true, "\(log)")
        #expect(try cat(directory + "/a.img", "/etc/hello") == "one\n")

        _ = try RootfsImage.prepare(rootfs: directory + "/tree", imagePath: directory + "/b.img", cache: cache) { log.append($0) }
        #expect(log.last?.contains("from the cache") == true, "\(log)")
        #expect(try cat(directory + "/b.img", "/etc/hello") == "one\n")
        let copy = allocated(directory + "/b.img")
        #expect(copy.size == allocated(directory + "/a.img").size)
        #expect(copy.bytes < copy.size / 4, "the copy should stay sparse: \(copy)")

        // A container's writes to its image never reach the cache.
        let writer = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/b.img"))
        try writer.seek(toOffset: 0)
        try writer.write(contentsOf: Data(repeating: 0xff, count: 4096 * 4))
        try writer.close()
        _ = try RootfsImage.prepare(rootfs: directory + "/tree", imagePath: directory + "/c.img", cache: cache) { log.append($0) }
        #expect(log.last?.contains("from the cache") == true)
        #expect(try cat(directory + "/c.img", "/etc/hello") == "one\n")

        // A changed file (same size) is a different tree.
        usleep(20_000)
        try "two\n".write(toFile: directory + "/tree/etc/hello", atomically: false, encoding: .utf8)
        _ = try RootfsImage.prepare(rootfs: directory + "/tree", imagePath: directory + "/d.img", cache: cache) { log.append($0) }
        #expect(log.last?.contains("made from") == true, "\(log)")
        #expect(try cat(directory + "/d.img", "/etc/hello") == "two\n")
        // ... and so is one whose only change is a new, empty file.
        FileManager.default.createFile(atPath: directory + "/tree/etc/new", contents: nil)
        _ = try RootfsImage.prepare(rootfs: directory + "/tree", imagePath: directory + "/e.img", cache: cache) { log.append($0) }
        #expect(log.last?.contains("made from") == true, "\(log)")
    }

    @Test func aFingerprintMismatchIsAMiss() throws {
        let cache = RootfsImageCache(directory: directory + "/cache")
        _ = try RootfsImage.prepare(rootfs: directory + "/tree", imagePath: directory + "/a.img", cache: cache)
        let fingerprint = try RootfsFingerprint(directory: directory + "/tree")
        let stored = directory + "/cache/" + FNV1a.hex(fingerprint.hash) + ".fingerprint"
        #expect(FileManager.default.contents(atPath: stored) == Data(fingerprint.text.utf8))
        // Another tree whose fingerprint hashed alike: the full text differs, so no reuse.
        try Data("another tree\n".utf8).write(to: URL(fileURLWithPath: stored))
        #expect(try cache.copy(fingerprint, to: directory + "/b.img") == false)
        #expect(!FileManager.default.fileExists(atPath: directory + "/b.img"))
    }

    @Test func theLeastRecentlyUsedEntriesGo() throws {
        let cache = RootfsImageCache(directory: directory + "/cache", capacity: 2)
        var fingerprints: [RootfsFingerprint] = []
        for index in 0..<3 {
            try "\(index)\n".write(toFile: directory + "/tree/etc/hello-\(index)", atomically: false, encoding: .utf8)
            fingerprints.append(try RootfsFingerprint(directory: directory + "/tree"))
            _ = try RootfsImage.prepare(rootfs: directory + "/tree", imagePath: directory + "/\(index).img", cache: cache)
            usleep(20_000)
        }
        let images = try FileManager.default.contentsOfDirectory(atPath: directory + "/cache").filter { $0.hasSuffix(".img") }
        #expect(images.count == 2)
        #expect(try cache.copy(fingerprints[0], to: directory + "/old.img") == false)
        #expect(try cache.copy(fingerprints[2], to: directory + "/new.img") == true)
    }

    @Test func sparseCopyKeepsDataAndHoles() throws {
        let source = directory + "/sparse.src"
        let fd = open(source, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        #expect(fd >= 0)
        let block = [UInt8](repeating: 0x5a, count: 8192)
        #expect(pwrite(fd, block, block.count, 0) == block.count)
        #expect(pwrite(fd, block, block.count, 32 << 20) == block.count)
        #expect(ftruncate(fd, 64 << 20) == 0)
        close(fd)
        try SparseFileCopy.copy(from: source, to: directory + "/sparse.dst")
        #expect(FileManager.default.contents(atPath: directory + "/sparse.dst") == FileManager.default.contents(atPath: source))
        let copy = allocated(directory + "/sparse.dst")
        #expect(copy.size == 64 << 20 && copy.bytes <= 1 << 20, "\(copy)")
        // The destination must not exist: nothing is overwritten.
        #expect(throws: SystemError.self) { try SparseFileCopy.copy(from: source, to: directory + "/sparse.dst") }
        #expect(throws: SystemError.self) { try SparseFileCopy.copy(from: directory + "/missing", to: directory + "/x") }
    }
}

/// The cache's sweep of abandoned temporaries (AtomicFile's and older runtimes').
@Suite struct RootfsImageCacheSweepTests {
    /// The rootfs image cache removes what a runtime killed mid-store left (this format's
    /// temporaries and older runtimes' `.<pid>-<hash>.img`), and keeps its entries.
    @Test func theRootfsCacheSweepsAbandonedImages() throws {
        let dir = try Fixtures.scratchDirectory("cache-sweep")
        let cache = RootfsImageCache(directory: dir)
        let abandoned = try AtomicFile.createTemporary(for: dir + "/0123456789abcdef.img", mode: 0o600)
        close(abandoned.fd)
        Fixtures.backdate(abandoned.path, seconds: 600)
        FileManager.default.createFile(atPath: dir + "/.4242-0123456789abcdef.img", contents: Data(count: 10))
        Fixtures.backdate(dir + "/.4242-0123456789abcdef.img", seconds: 600)
        FileManager.default.createFile(atPath: dir + "/0123456789abcdef.img", contents: Data(count: 10))
        let removed = cache.removeAbandonedTemporaries()
        #expect(Set(removed) == [(abandoned.path as NSString).lastPathComponent, ".4242-0123456789abcdef.img"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["0123456789abcdef.img"])
    }
}
