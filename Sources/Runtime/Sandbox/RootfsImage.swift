import Foundation
import Glibc
import LinuxSupport

/// The container's root filesystem as the guest sees it: a virtio-block disk. A rootfs
/// directory becomes an ext4 image made with `mke2fs -d` in the container's state dir
/// (so the container's writes last as long as the container, and never reach the bundle);
/// a rootfs that is a block device is handed over as it is.
public struct RootfsImage: Sendable, Equatable {
    public let path: String
    public let isBlockDevice: Bool

    /// The disk's serial as the guest reads it (/sys/block/vdX/serial): how the agent
    /// finds the container's rootfs.
    public static let diskSerial = "rootfs"

    public static func isBlockDevice(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFBLK
    }

    /// Builds `imagePath` from `rootfs` (or returns the device): copied from `cache` when
    /// the tree was made into an image before, else made with `mke2fs -d` (and stored in
    /// the cache). Size: the tree's allocated bytes plus a third, plus 64 MiB of headroom
    /// for the container's writes. A cache that cannot be written is logged and skipped.
    public static func prepare(rootfs: String, imagePath: String, cache: RootfsImageCache? = nil,
                               log: (String) -> Void = { _ in }) throws -> RootfsImage {
        if isBlockDevice(rootfs) { return RootfsImage(path: rootfs, isBlockDevice: true) }
        let fingerprint = try RootfsFingerprint(directory: rootfs)
        if let cache {
            unlink(imagePath)
            do {
                if try cache.copy(fingerprint, to: imagePath) {
                    log("rootfs image \(imagePath): from the cache (\(cache.directory)) for \(rootfs)")
                    return RootfsImage(path: imagePath, isBlockDevice: false)
                }
            } catch {
                log("rootfs image cache: \(error); making the image")
                unlink(imagePath)
            }
        }
        try makeImage(rootfs: rootfs, imagePath: imagePath, allocatedBytes: fingerprint.allocatedBytes)
        log("rootfs image \(imagePath): made from \(rootfs)")
        if let cache {
            do { try cache.store(imagePath, for: fingerprint) } catch { log("rootfs image cache: cannot store: \(error)") }
        }
        return RootfsImage(path: imagePath, isBlockDevice: false)
    }

    /// `mke2fs -d` of the tree into a new sparse file.
    static func makeImage(rootfs: String, imagePath: String, allocatedBytes used: Int) throws {
        let size = ((used + used / 3 + (64 << 20)) + (1 << 20) - 1) & ~((1 << 20) - 1)
        let fd = open(imagePath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError("create \(imagePath)") }
        let truncated = ftruncate(fd, off_t(size))
        close(fd)
        guard truncated == 0 else { throw SystemError("ftruncate \(imagePath) to \(size) bytes") }
        guard let mke2fs = (["/usr/sbin/mke2fs", "/sbin/mke2fs", "/usr/bin/mke2fs"] as [String]).first(where: { access($0, X_OK) == 0 }) else {
            throw RuntimeError("mke2fs not found (install e2fsprogs): it builds the container's rootfs image")
        }
        let arguments = ["mke2fs", "-q", "-F", "-t", "ext4", "-E", "root_owner=0:0", "-O", "^has_journal",
                         "-L", "rootfs", "-d", rootfs, imagePath]
        let output = try FileDescriptors.pipe()
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devNull) }
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(path: mke2fs, argv: arguments, env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                                           fds: [0: devNull, 1: output.write, 2: output.write])
        } catch {
            close(output.read); close(output.write)
            throw error
        }
        close(output.write)
        let text = String(decoding: (try? FileDescriptors.readAll(output.read, limit: 8192)) ?? [], as: UTF8.self)
        close(output.read)
        let termination = try child.wait()
        guard termination == .exited(0) else {
            unlink(imagePath)
            throw RuntimeError("mke2fs -d \(rootfs) failed (\(termination)): \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }
}
