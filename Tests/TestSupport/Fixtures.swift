import Foundation

/// Locates and prepares what the tests need from the repository and the machine: the
/// package root, the shared guest kernel, the probe guest (built with the system
/// toolchain on first use) and the built `kata-vmm` executable.
public enum Fixtures {
    /// The package root (Tests/TestSupport/Fixtures.swift is two levels below it).
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `shared/` folder beside the checkout (CI lays it there as it is for a session).
    public static var sharedDirectory: URL {
        if let override = ProcessInfo.processInfo.environment["KATA_SHARED_DIR"] {
            return URL(fileURLWithPath: override)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    }

    /// True in CI, where every optional fixture must be present.
    public static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// A per-test-process scratch directory (kernels, initramfs images, disk images,
    /// sockets), removed when the test process exits.
    public static let scratch: URL = {
        let url = URL(fileURLWithPath: scratchPath, isDirectory: true)
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: Fixtures.scratchPath) }
        return url
    }()

    static let scratchPath = FileManager.default.temporaryDirectory
        .appendingPathComponent("kata-swift-tests-\(getpid())").path

    /// Directory holding the built products (the test bundle lives there too).
    public static var productsDirectory: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }

    public static var kataVmm: URL {
        let candidate = productsDirectory.appendingPathComponent("kata-vmm")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        return packageRoot.appendingPathComponent(".build/debug/kata-vmm")
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var cache: [String: URL] = [:]  // read and written only under `lock`

    /// Runs `make` once per process for `key`, caching the produced file.
    static func once(_ key: String, _ make: () throws -> URL) rethrows -> URL {
        lock.lock()
        defer { lock.unlock() }
        if let url = cache[key] { return url }
        let url = try make()
        cache[key] = url
        return url
    }

    public struct FixtureError: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    /// The probe guest ELF, built from guest/probe with the system gcc.
    public static func probeGuest() throws -> URL {
        try once("probe") {
            let out = scratch.appendingPathComponent("probe.elf")
            let result = try Command.run("/bin/bash", [packageRoot.appendingPathComponent("guest/probe/build.sh").path, out.path])
            guard result.status == 0 else { throw FixtureError("building the probe guest failed:\n\(result.stderr)") }
            return out
        }
    }

    /// The shared Linux test kernel (uncompressed), or nil where shared/ lacks it.
    public static func sharedKernel() throws -> URL? {
        let compressed = sharedDirectory.appendingPathComponent("guest-kernel/vmlinux.xz")
        guard FileManager.default.fileExists(atPath: compressed.path) else { return nil }
        return try once("vmlinux") {
            let out = scratch.appendingPathComponent("vmlinux")
            let result = try Command.run("/bin/sh", ["-c", "xz -dc '\(compressed.path)' > '\(out.path)'"])
            guard result.status == 0 else { throw FixtureError("xz -d of the shared kernel failed: \(result.stderr)") }
            return out
        }
    }

    /// The busybox initramfs of the end-to-end tests (guest/linux-test).
    public static func e2eInitramfs() throws -> URL {
        try once("e2e-initramfs") {
            let out = scratch.appendingPathComponent("e2e.cpio")
            let script = packageRoot.appendingPathComponent("guest/linux-test/build-initramfs.sh").path
            let result = try Command.run("/bin/bash", [script, out.path])
            guard result.status == 0 else { throw FixtureError("building the initramfs failed:\n\(result.stderr)") }
            return out
        }
    }

    /// The virtio end-to-end initramfs: one static /init (guest/virtio-test/init.c).
    public static func virtioInitramfs() throws -> URL { try staticInitramfs("virtio-test") }

    /// The network end-to-end initramfs: one static /init (guest/net-test/init.c).
    public static func netInitramfs() throws -> URL { try staticInitramfs("net-test") }

    /// The vsock end-to-end initramfs: one static /init (guest/vsock-test/init.c).
    public static func vsockInitramfs() throws -> URL { try staticInitramfs("vsock-test") }

    /// The virtio-fs end-to-end initramfs: one static /init (guest/fs-test/init.c).
    public static func fsInitramfs() throws -> URL { try staticInitramfs("fs-test") }

    /// guest/<folder>/init.c built into an initramfs by guest/build-static-initramfs.sh.
    static func staticInitramfs(_ folder: String) throws -> URL {
        try once(folder) {
            let out = scratch.appendingPathComponent("\(folder).cpio")
            let script = packageRoot.appendingPathComponent("guest/build-static-initramfs.sh").path
            let source = packageRoot.appendingPathComponent("guest/\(folder)/init.c").path
            let result = try Command.run("/bin/bash", [script, source, out.path])
            guard result.status == 0 else { throw FixtureError("building the \(folder) initramfs failed:\n\(result.stderr)") }
            return out
        }
    }

    /// Debian's cloud kernel bzImage that .ci/run unpacks (KATA_TEST_DEBIAN_BZIMAGE).
    public static var debianBzImage: URL? {
        guard let path = ProcessInfo.processInfo.environment["KATA_TEST_DEBIAN_BZIMAGE"],
              FileManager.default.fileExists(atPath: path) else { return nil }
        return URL(fileURLWithPath: path)
    }

    /// The command-line options the shared kernel needs on these hosts (its README), and
    /// `nopvspin`: the paravirtual spinlock's kick hypercall faults under this host's
    /// emulator (seen as a guest oops in kvm_kick_cpu when a guest was starved of CPU).
    public static let sharedKernelCmdline = "nopvspin noxsave nokaslr clearcpuid=popcnt,cx16,rdrand,rdseed,sse4_2,pclmulqdq,aes,avx,avx2,avx512f,movbe,smap,pku,ospke,fsgsbase,rdpid,pcid,invpcid,serialize,waitpkg,rdtscp,xsave,xsaves,xsaveopt,xsavec"
}
