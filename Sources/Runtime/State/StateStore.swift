import Foundation
import Glibc
import LinuxSupport

/// The runtime's state under `--root` (default /run/kata-swift): one directory per
/// container holding `state.json`, written atomically (`AtomicFile`), and a `lock`
/// file that every command holding the container takes with flock, so that concurrent
/// `kill`/`delete`/`start` calls from a caller see consistent state.
public struct StateStore: Sendable {
    public static let defaultRoot = "/run/kata-swift"
    /// Sockets live here, under a short per-container name: `--root` paths from callers
    /// (docker's exec-root + 64-hex ids) are too long for a 108-byte Unix socket path.
    public static let defaultSocketBase = "/run/kata-swift-sockets"

    public let root: String
    public let socketBase: String

    public init(root: String = StateStore.defaultRoot, socketBase: String = StateStore.defaultSocketBase) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
        self.socketBase = socketBase
    }

    /// runc's rule for container ids.
    public static func validate(id: String) throws {
        guard !id.isEmpty, id.count <= 1024,
              id.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) && $0.isASCII || "_+-.".unicodeScalars.contains($0) }),
              id != ".", id != ".."
        else { throw RuntimeError("invalid container id format: \(id)") }
    }

    public func directory(of id: String) -> String { root + "/" + id }

    /// Rootfs images made before, shared by the containers of this root. '@' is not
    /// allowed in a container id, so no container's directory can take this name.
    public var rootfsImageCache: RootfsImageCache { RootfsImageCache(directory: root + "/@rootfs-cache") }

    /// A short, stable directory for the container's sockets: root and id hashed (FNV-1a).
    public func socketDirectory(of id: String) -> String {
        socketBase + "/" + FNV1a.hex(FNV1a.hash(root + "\u{0}" + id))
    }

    /// The socket directory as a claim: see `SocketDirectory` for why it is checked.
    public func claimedSocketDirectory(of id: String) -> SocketDirectory {
        SocketDirectory(path: socketDirectory(of: id), owner: directory(of: id))
    }

    /// Makes the container's directory; fails if the id is taken.
    public func createDirectory(for id: String) throws -> String {
        try Self.validate(id: id)
        try makeDirectories(root, mode: 0o711)
        let dir = directory(of: id)
        if mkdir(dir, 0o711) != 0 {
            if errno == EEXIST { throw RuntimeError("container with id exists: \(id)") }
            throw SystemError("mkdir \(dir)")
        }
        return dir
    }

    public func exists(_ id: String) -> Bool {
        FileManager.default.fileExists(atPath: directory(of: id) + "/state.json")
    }

    public func load(_ id: String) throws -> ContainerRecord {
        try Self.validate(id: id)
        let path = directory(of: id) + "/state.json"
        guard let data = FileManager.default.contents(atPath: path) else { throw RuntimeError.notExist(id) }
        do {
            return try JSONDecoder().decode(ContainerRecord.self, from: data)
        } catch {
            throw RuntimeError("\(path): unreadable state (\(error))")
        }
    }

    /// Atomic: a reader sees the old or the new file, never a torn one.
    public func save(_ record: ContainerRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(record)
        try AtomicFile.write(data, to: directory(of: record.id) + "/state.json")
    }

    /// Ids of every container with a state file, sorted.
    public func list() -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return entries.filter { exists($0) }.sorted()
    }

    /// Takes the container's lock (blocking) for the duration of `body`.
    public func withLock<T>(_ id: String, _ body: () throws -> T) throws -> T {
        try Self.validate(id: id)
        let path = directory(of: id) + "/lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if errno == ENOENT { throw RuntimeError.notExist(id) }
            throw SystemError("open \(path)")
        }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw SystemError("flock \(path)") }
        }
        return try body()
    }

    /// Removes the container's directory and its socket directory (if it is the container's:
    /// a colliding name may be another container's). state.json goes first: a removal cut
    /// short leaves a directory that `delete --force` of a missing container finishes.
    /// Never through a mount: a share that could not be unmounted holds a volume's data,
    /// so then everything stays, the state file too, for a later delete to retry.
    public func remove(_ record: ContainerRecord) {
        guard MountTable.isUnmounted(record.stateDir) else { return }
        SocketDirectory(path: record.socketDir, owner: record.stateDir).release()
        unlink(record.stateDir + "/state.json")
        try? FileManager.default.removeItem(atPath: record.stateDir)
        try? AtomicFile.syncDirectory(containing: record.stateDir)
    }

    /// The status a caller should see: the recorded one, corrected by whether the
    /// container's processes still exist.
    public static func effectiveStatus(_ record: ContainerRecord) -> OCIState.Status {
        switch record.status {
        case .creating:
            // A create that died half-way: the monitor is gone.
            if let monitor = record.monitor, monitor.isAlive { return .creating }
            return .stopped
        case .created, .running, .paused:
            if record.exitStatus != nil { return .stopped }
            guard let initProcess = record.initProcess, initProcess.isAlive else { return .stopped }
            guard let monitor = record.monitor, monitor.isAlive else { return .stopped }
            return record.status
        case .stopped:
            return record.status
        }
    }

    public static func ociState(_ record: ContainerRecord) -> OCIState {
        let status = effectiveStatus(record)
        let pid = (status == .stopped) ? 0 : (record.initProcess?.pid ?? 0)
        return OCIState(id: record.id, status: status, pid: pid, bundle: record.bundle, rootfs: record.rootfs,
                        created: record.created, annotations: record.annotations)
    }
}
