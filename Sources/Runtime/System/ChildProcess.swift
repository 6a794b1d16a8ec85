import Foundation
import Glibc
import LinuxSupport

/// A child started with posix_spawn: exact argv (argv[0] may differ from the path, as OCI
/// hooks allow), exact environment, chosen fds mapped to 0/1/2 and beyond, optionally a
/// new session. Foundation's Process can do none of the argv0/fd-mapping/setsid parts.
public struct ChildProcess {
    public let pid: pid_t

    /// `fds`: child fd number -> parent fd to dup there; every other fd is closed on exec
    /// (the runtime opens everything O_CLOEXEC).
    public static func spawn(path: String, argv: [String], env: [String], fds: [Int32: Int32],
                             newSession: Bool = false) throws -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Two steps so a target number that is also a source is not clobbered: first dup
        // every source above the highest target, then onto the targets.
        let high = (fds.keys.max() ?? 2) + 1 + 64
        var staged: [(Int32, Int32)] = []
        for (index, (target, source)) in fds.sorted(by: { $0.key < $1.key }).enumerated() {
            let temporary = high + Int32(index)
            posix_spawn_file_actions_adddup2(&actions, source, temporary)
            staged.append((target, temporary))
        }
        for (target, temporary) in staged {
            posix_spawn_file_actions_adddup2(&actions, temporary, target)
            posix_spawn_file_actions_addclose(&actions, temporary)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if newSession { flags |= Self.posixSpawnSetsid }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer {
            cArgv.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        var status = posix_spawn(&pid, path, &actions, &attributes, cArgv, cEnv)
        // ETXTBSY: a program (a hook script) just written is still open for writing in some
        // process, typically a child forked elsewhere while the writer's fd was open. That
        // fd goes away with the child's exec; retry briefly, as containerd does.
        var retries = 0
        while status == ETXTBSY && retries < 50 {
            usleep(20_000)
            retries += 1
            status = posix_spawn(&pid, path, &actions, &attributes, cArgv, cEnv)
        }
        guard status == 0 else { throw SystemError("spawning \(path)", errno: status) }
        return ChildProcess(pid: pid)
    }

    /// glibc's POSIX_SPAWN_SETSID (a GNU extension the Glibc module does not export).
    static let posixSpawnSetsid: Int32 = 0x80

    public enum Termination: Equatable, Sendable {
        case exited(Int32)
        case signalled(Int32)

        /// The shell convention: the code, or 128 + the signal.
        public var exitCode: Int32 {
            switch self {
            case .exited(let code): return code
            case .signalled(let signal): return 128 + signal
            }
        }
    }

    /// Waits for the child, retrying on EINTR.
    public func wait() throws -> Termination {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw SystemError("waitpid \(pid)") }
        }
        return Self.decode(status)
    }

    /// Non-blocking: nil while it runs.
    public func poll() throws -> Termination? {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == 0 { return nil }
        guard result == pid else { throw SystemError("waitpid \(pid)") }
        return Self.decode(status)
    }

    static func decode(_ status: Int32) -> Termination {
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
    }
}

/// The fds a process inherited from its caller.
public enum InheritedDescriptors {
    /// Marks every fd above 2 close-on-exec (except `keep`, e.g. the monitor's ready pipe).
    public static func closeOnExecAboveStdio(keep: Set<Int32> = []) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for entry in entries {
            guard let fd = Int32(entry), fd > 2, !keep.contains(fd) else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }
}
