import Foundation
import Glibc
import LinuxSupport

/// Rootfs images already made, keyed by the rootfs's fingerprint: creating a container
/// from a tree seen before copies the image (sparse)
/// instead of running `mke2fs -d` again. Each entry is `<hash>.img` plus `<hash>.fingerprint`,
/// the whole fingerprint, compared in full before use; both are written as `AtomicFile`s,
/// the fingerprint last, so a reader never takes a half-written image.
/// The least recently used entries beyond `capacity` are removed.
public struct RootfsImageCache: Sendable {
    public let directory: String
    public let capacity: Int

    public init(directory: String, capacity: Int = 8) {
        self.directory = directory
        self.capacity = capacity
    }

    func imagePath(_ fingerprint: RootfsFingerprint) -> String { directory + "/" + FNV1a.hex(fingerprint.hash) + ".img" }
    func fingerprintPath(_ fingerprint: RootfsFingerprint) -> String { directory + "/" + FNV1a.hex(fingerprint.hash) + ".fingerprint" }

    /// Copies the cached image for `fingerprint` to `destination`; false on a miss.
    public func copy(_ fingerprint: RootfsFingerprint, to destination: String) throws -> Bool {
        guard let stored = FileManager.default.contents(atPath: fingerprintPath(fingerprint)),
              stored.elementsEqual(fingerprint.text.utf8) else { return false }
        do {
            try SparseFileCopy.copy(from: imagePath(fingerprint), to: destination)
        } catch let error as SystemError where error.errno == ENOENT {
            return false  // removed by another runtime's eviction meanwhile
        }
        _ = utimensat(AT_FDCWD, imagePath(fingerprint), nil, 0)  // most recently used
        return true
    }

    /// Stores a copy of `image` (just made from the tree of `fingerprint`), then evicts.
    /// Temporaries left by a runtime killed while storing are removed first.
    public func store(_ image: String, for fingerprint: RootfsFingerprint) throws {
        try makeDirectories(directory, mode: 0o700)
        removeAbandonedTemporaries()
        try AtomicFile.replace(imagePath(fingerprint)) { fd, temporary in
            try SparseFileCopy.copy(from: image, into: fd, named: temporary)
        }
        try AtomicFile.write(Data(fingerprint.text.utf8), to: fingerprintPath(fingerprint))
        evict()
    }

    /// Every dot file here is a temporary (entries are `<hash>.img` and `<hash>.fingerprint`),
    /// including those of older runtimes (`.<pid>-<hash>.img`); an abandoned one is removed.
    @discardableResult
    public func removeAbandonedTemporaries(age: Double = 10) -> [String] {
        AtomicFile.removeAbandonedTemporaries(in: directory, age: age) { $0.hasPrefix(".") }
    }

    /// Keeps the `capacity` most recently used entries.
    func evict() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var entries: [(path: String, used: Int64)] = []
        var info = stat()
        for name in names where name.hasSuffix(".img") && !name.hasPrefix(".") {
            let path = directory + "/" + name
            if stat(path, &info) == 0 { entries.append((path, info.st_mtim.nanoseconds)) }
        }
        guard entries.count > capacity else { return }
        for entry in entries.sorted(by: { $0.used > $1.used }).dropFirst(capacity) {
            unlink(String(entry.path.dropLast(4)) + ".fingerprint")  // first: the entry stops matching
            unlink(entry.path)
        }
    }
}
