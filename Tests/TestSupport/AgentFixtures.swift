import Foundation

/// What the guest agent's tests need: a busybox root filesystem, the agent's initramfs
/// (guest/build-initramfs.sh, which builds the static agent once per process) and ext4
/// disk images made from a directory (mke2fs -d).
extension Fixtures {
    public static var busybox: String? {
        ["/bin/busybox", "/usr/bin/busybox"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// A fresh rootfs directory: the static busybox with its applets as symlinks
    /// (`busybox --install -s`), /etc/passwd and the usual empty mount points.
    public static func busyboxRootfs() throws -> String {
        guard let busybox else { throw FixtureError("busybox-static is not installed") }
        let root = scratch.appendingPathComponent("rootfs-\(UUID().uuidString.prefix(8))").path
        for directory in ["bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "etc", "root", "run"] {
            try FileManager.default.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: busybox, toPath: root + "/bin/busybox")
        let install = try Command.run("/usr/sbin/chroot", [root, "/bin/busybox", "--install", "-s"])
        guard install.status == 0 else { throw FixtureError("busybox --install: \(install.stderr)") }
        try "root:x:0:0:root:/root:/bin/sh\n".write(toFile: root + "/etc/passwd", atomically: true, encoding: .utf8)
        return root
    }

    /// The guest initramfs with the static agent as /init (uncompressed), built once per
    /// test process.
    public static func agentInitramfs() throws -> URL {
        try once("agent-initramfs") {
            let out = scratch.appendingPathComponent("agent.cpio")
            let script = packageRoot.appendingPathComponent("guest/build-initramfs.sh").path
            let result = try Command.run("/bin/bash", [script, out.path], timeout: 1800)
            guard result.status == 0 else { throw FixtureError("guest/build-initramfs.sh failed:\n\(result.stderr.suffix(4000))") }
            return out
        }
    }

    /// The static agent binary build-initramfs.sh built.
    public static var staticAgent: URL {
        packageRoot.appendingPathComponent(".build/guest-agent/release/kata-agent")
    }

    /// An ext4 image of `mib` MiB holding the contents of `directory`.
    public static func ext4Image(of directory: String, mib: Int) throws -> URL {
        let out = scratch.appendingPathComponent("disk-\(UUID().uuidString.prefix(8)).ext4")
        let result = try Command.run("/sbin/mke2fs", ["-q", "-F", "-t", "ext4", "-d", directory, "-L", "rootfs", out.path, "\(mib)M"])
        guard result.status == 0 else { throw FixtureError("mke2fs -d failed: \(result.stderr)") }
        return out
    }
}
