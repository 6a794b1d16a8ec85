import Foundation
import Glibc
import Testing

/// Debian's virtiofsd (qemu-system-common), serving a scratch directory, the way the
/// runtime starts it. With `sandbox=namespace` it forks the process that serves (PID 1 of
/// its PID namespace), which outlives a SIGKILL of its parent (it does not get the
/// SIGTERM it asked for on its parent's death), so it is killed by its process group:
/// Foundation's `Process` starts it as the leader of one.
public final class Virtiofsd {
    public static let path = "/usr/lib/qemu/virtiofsd"
    public let socketPath: String
    /// The directory it shares.
    public let source: String
    public let process: BackgroundCommand

    /// `cache`: virtiofsd's cache mode (none, auto, always); Kata's default is auto.
    public init(cache: String = "none") throws {
        guard FileManager.default.isExecutableFile(atPath: Self.path) else { try Fixtures.missing("virtiofsd (\(Self.path))") }
        let directory = try Fixtures.scratchDirectory("virtiofs")
        source = directory + "/shared"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        socketPath = directory + "/virtiofsd.sock"
        process = try BackgroundCommand(Self.path, ["--socket-path=\(socketPath)", "-o", "source=\(source)", "-o", "cache=\(cache)",
                                                    "-o", "sandbox=namespace"])
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: socketPath) {
            guard process.isRunning, Date() < deadline else {
                throw Fixtures.FixtureError("virtiofsd did not listen: \(process.output)")
            }
            usleep(10_000)
        }
        guard getpgid(process.pid) == process.pid else {
            throw Fixtures.FixtureError("virtiofsd is not the leader of its own process group")
        }
    }

    /// SIGKILL to the whole group: the daemon and the process it forked die at once.
    public func kill() {
        guard process.pid > 1 else { return }  // kill(-0) would be the test's own group
        Glibc.kill(-process.pid, SIGKILL)
        _ = process.waitForExit(timeout: 10)
    }

    deinit { kill() }
}
