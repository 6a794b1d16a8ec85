import Foundation
import Glibc
@testable import Runtime
import TestSupport
import Testing

/// The runtime's virtiofsd, with Debian's (qemu-system-common, which .ci/install-deps installs).
@Suite struct VirtiofsDaemonTests {
    func options(_ scratch: String, source: String) throws -> VirtiofsDaemon.Options {
        guard FileManager.default.isExecutableFile(atPath: Virtiofsd.path) else { try Fixtures.missing("virtiofsd (\(Virtiofsd.path))") }
        return VirtiofsDaemon.Options(executable: Virtiofsd.path, source: source, socketPath: scratch + "/fs.sock",
                                      cache: "auto", extraArgs: [])
    }

    /// The VMM's side of the connection: Debian's virtiofsd forks the process that serves
    /// (sandbox=namespace) once a frontend connects. Waits for that process.
    func connectAndWaitForTheServer(_ options: VirtiofsDaemon.Options, _ daemon: ProcessIdentity) throws -> UnixSocket {
        let frontend = try UnixSocket.connect(to: options.socketPath)
        let deadline = Date().addingTimeInterval(10)
        while VirtiofsDaemon.groupMembers(daemon.pid).count < 2 && Date() < deadline { usleep(10_000) }
        return frontend
    }

    /// It listens, leads its own process group (with the process it forks), is recorded
    /// before it listens, and stop takes the whole group.
    @Test func startsInItsOwnGroupAndStopTakesTheGroup() throws {
        let scratch = try Fixtures.scratchDirectory("virtiofsd")
        let options = try options(scratch, source: scratch)
        var recorded: ProcessIdentity?
        let daemon = try VirtiofsDaemon.start(options, logPath: scratch + "/log") { recorded = $0 }
        defer { VirtiofsDaemon.stop(daemon, executable: options.executable) }
        #expect(recorded == daemon)
        #expect(FileManager.default.fileExists(atPath: options.socketPath))
        #expect(getpgid(daemon.pid) == daemon.pid)
        let frontend = try connectAndWaitForTheServer(options, daemon)
        defer { frontend.close() }
        let members = VirtiofsDaemon.groupMembers(daemon.pid)
        #expect(members.count == 2, "\(members)")
        VirtiofsDaemon.stop(daemon, executable: options.executable)
        #expect(VirtiofsDaemon.groupMembers(daemon.pid).isEmpty)
        #expect(!daemon.isAlive)
    }

    /// A group whose leader is gone (virtiofsd's serving child can outlive it): stop kills
    /// the members that run the daemon's command, and nothing else of that group, which a
    /// reused pid could name.
    @Test func aGroupWithoutItsLeaderLosesOnlyTheDaemonsProcesses() throws {
        let leader = try ChildProcess.spawn(path: "/bin/sh", argv: ["sh", "-c", "/bin/sleep 300 & exit 0"],
                                            env: ["PATH=/bin:/usr/bin"], fds: [0: 0, 1: 1, 2: 2], newSession: true)
        let identity = try #require(ProcessIdentity.of(leader.pid))
        _ = try leader.wait()
        defer { kill(-leader.pid, SIGKILL) }
        let deadline = Date().addingTimeInterval(5)
        while VirtiofsDaemon.groupMembers(leader.pid).isEmpty && Date() < deadline { usleep(10_000) }
        let orphans = VirtiofsDaemon.groupMembers(leader.pid)
        #expect(orphans.count == 1 && VirtiofsDaemon.command(orphans[0]) == "sleep", "\(orphans)")
        VirtiofsDaemon.stop(identity, executable: Virtiofsd.path)
        #expect(VirtiofsDaemon.groupMembers(leader.pid) == orphans, "not the daemon's: left alone")
        VirtiofsDaemon.stop(identity, executable: "/bin/sleep")
        #expect(VirtiofsDaemon.groupMembers(leader.pid).isEmpty)
    }

    @Test func aDaemonThatCannotServeIsAClearError() throws {
        let scratch = try Fixtures.scratchDirectory("virtiofsd")
        let options = try options(scratch, source: scratch + "/absent")
        #expect { try VirtiofsDaemon.start(options, logPath: scratch + "/log") { _ in } } throws: { error in
            "\(error)".contains("virtiofsd exited")
        }
        var missing = options
        missing.executable = scratch + "/no-virtiofsd"
        #expect { try VirtiofsDaemon.start(missing, logPath: scratch + "/log") { _ in } } throws: { error in
            "\(error)".contains("not executable") && "\(error)".contains("shared_fs")
        }
    }
}
