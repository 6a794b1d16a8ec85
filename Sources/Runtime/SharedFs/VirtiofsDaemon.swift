import Foundation
import Glibc
import LinuxSupport

/// The virtiofsd of one sandbox, serving its shared directory to the VM's virtio-fs
/// device. It runs in its own session: with `sandbox=namespace` it forks the process that
/// serves (PID 1 of a new PID namespace), which a SIGKILL of the first does not take
/// along, so it is stopped by its process group. It exits by itself when the VMM's
/// vhost-user connection closes, which a VM's end (a killed monitor included) does.
enum VirtiofsDaemon {
    struct Options: Equatable {
        var executable: String
        var source: String
        var socketPath: String
        var cache: String
        var extraArgs: [String]
    }

    /// The argv: the `-o` spellings both Debian's C virtiofsd and the Rust one accept.
    static func arguments(_ options: Options) -> [String] {
        ["virtiofsd", "--socket-path=\(options.socketPath)", "-o", "source=\(options.source)",
         "-o", "cache=\(options.cache)", "-o", "sandbox=namespace"] + options.extraArgs
    }

    /// Starts it, stderr to `logPath`, hands its identity to `recorded` at once (so that a
    /// runtime killed while it waits leaves a daemon delete can find; a SIGKILL between the
    /// spawn and that save, a few microseconds, is the one window that leaves a daemon
    /// nobody recorded, waiting on a socket no VM will open), and waits until its
    /// socket exists (it binds and listens before anything else). Nothing may connect to
    /// probe it: Debian's serves one connection and then exits.
    /// A `recorded` that throws stops the daemon again.
    @discardableResult
    static func start(_ options: Options, logPath: String, timeout: Double = 10,
                      recorded: (ProcessIdentity) throws -> Void) throws -> ProcessIdentity {
        guard access(options.executable, X_OK) == 0 else {
            throw RuntimeError("virtio_fs_daemon \(options.executable): not executable (install virtiofsd, or set shared_fs = \"none\")")
        }
        guard options.socketPath.utf8.count < 108 else { throw RuntimeError("\(options.socketPath): too long for a Unix socket") }
        let log = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard log >= 0 else { throw SystemError("open \(logPath)") }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer {
            close(log)
            if devNull >= 0 { close(devNull) }
        }
        let child = try ChildProcess.spawn(path: options.executable, argv: arguments(options),
                                           env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                                           fds: [0: devNull >= 0 ? devNull : log, 1: log, 2: log], newSession: true)
        let identity = ProcessIdentity.of(child.pid) ?? ProcessIdentity(pid: child.pid, startTime: 0)
        do { try recorded(identity) } catch {
            stop(identity, executable: options.executable)
            throw error
        }
        let deadline = Date().addingTimeInterval(timeout)
        while !FileManager.default.fileExists(atPath: options.socketPath) {
            if let end = try? child.poll() {
                let tail = LogTail.lastLines(of: logPath, count: 5) ?? ""
                throw RuntimeError("virtiofsd exited (\(end.exitCode)) before listening on \(options.socketPath): \(tail)")
            }
            guard Date() < deadline else {
                stop(identity, executable: options.executable)
                throw RuntimeError("virtiofsd did not listen on \(options.socketPath) within \(Int(timeout)) s")
            }
            usleep(5_000)
        }
        return identity
    }

    /// SIGKILL to its process group, and waits until the group is empty. When the leader
    /// is already gone only members whose command is `executable`'s are killed, so that a
    /// reused pid never takes an unrelated group down (the command, not /proc/PID/exe,
    /// which the serving process's pivot_root changes).
    static func stop(_ identity: ProcessIdentity, executable: String) {
        guard identity.pid > 1 else { return }
        if identity.isAlive {
            kill(-identity.pid, SIGKILL)
        } else {
            let name = String((executable as NSString).lastPathComponent.prefix(15))
            for member in groupMembers(identity.pid) where command(member) == name { kill(member, SIGKILL) }
        }
        let deadline = Date().addingTimeInterval(5)
        repeat {
            var status: Int32 = 0
            _ = waitpid(identity.pid, &status, WNOHANG)  // run's own child
            if groupMembers(identity.pid).isEmpty { return }
            usleep(10_000)
        } while Date() < deadline
    }

    /// Live (not zombie) processes whose process group is `group`.
    static func groupMembers(_ group: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let fields = ProcessIdentity.statFields(of: pid), fields.count > 2 else { return false }
            return fields[0] != "Z" && Int32(fields[2]) == group  // fields 3 (state) and 5 (pgrp)
        }
    }

    static func command(_ pid: Int32) -> String? {
        (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .newlines)
    }
}
