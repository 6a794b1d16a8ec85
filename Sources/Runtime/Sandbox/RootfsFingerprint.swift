import Foundation
import Glibc
import LinuxSupport

/// What a rootfs directory holds, as metadata: one line per entry (relative path, type and
/// mode, owner, size, mtime and ctime in nanoseconds, device number, symlink target),
/// sorted. Any write to a file changes its mtime and ctime, and ctime cannot be set back,
/// so two trees with one fingerprint made one image. Paths are relative and inode numbers
/// left out so that two overlay mounts of one image's layers (one per container, as
/// containerd and podman make them) fingerprint alike.
public struct RootfsFingerprint: Equatable, Sendable {
    public let text: String
    /// Allocated bytes in the tree (for the image's size).
    public let allocatedBytes: Int

    public var hash: UInt64 { FNV1a.hash(text) }

    public init(directory root: String) throws {
        var lines: [String] = []
        var allocated = 0
        var info = stat()
        guard lstat(root, &info) == 0 else { throw SystemError("lstat \(root)") }
        lines.append(Self.line(".", info, linkTarget: ""))
        guard let enumerator = FileManager.default.enumerator(atPath: root) else {
            throw RuntimeError("rootfs \(root): cannot be listed")
        }
        for case let relative as String in enumerator {
            let path = root + "/" + relative
            guard lstat(path, &info) == 0 else { throw SystemError("lstat \(path)") }
            allocated += Int(info.st_blocks) * 512 + 4096
            var target = ""
            if (info.st_mode & S_IFMT) == S_IFLNK {
                target = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?"
            }
            lines.append(Self.line(relative, info, linkTarget: target))
        }
        lines.sort()
        text = lines.joined(separator: "\n") + "\n"
        allocatedBytes = allocated
    }

    static func line(_ path: String, _ info: stat, linkTarget: String) -> String {
        "\(path)\t\(String(info.st_mode, radix: 8))\t\(info.st_uid):\(info.st_gid)\t\(info.st_size)\t\(info.st_mtim.nanoseconds)\t\(info.st_ctim.nanoseconds)\t\(info.st_rdev)\t\(linkTarget)"
    }
}
