#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CAgentSpawn

/// Starts container processes through the C child path (`agent_spawn`): prepares the
/// configuration in a `SpawnArena`, clones under the `ProcessTable` lock, and reads the
/// child's report. A container's init stops before execve until `start` (StartContainer);
/// an exec'd process joins the container's namespaces and runs at once.
///
/// The only execve of a container start is the container's own program: no helper binary
/// and no re-exec of the agent, which matters on hosts where a freshly exec'd process can
/// crash on a stale page (see guest/kernel/README.md).
enum ProcessSpawner {
    /// A cloned init process waiting to be started.
    final class PendingStart {
        let pid: pid_t
        private var startFd: Int32
        private var syncFd: Int32

        init(pid: pid_t, startFd: Int32, syncFd: Int32) {
            self.pid = pid
            self.startFd = startFd
            self.syncFd = syncFd
        }

        deinit { abandon() }

        /// Lets the process execve; returns once it did (or throws why it could not).
        func start() throws(AgentError) {
            var byte: UInt8 = 1
            guard write(startFd, &byte, 1) == 1 else { throw .errno("start the container process") }
            close(startFd)
            startFd = -1
            defer { close(syncFd); syncFd = -1 }
            if let failure = ProcessSpawner.readReport(syncFd) { throw failure }
        }

        /// Closes the start pipe: a process still waiting exits (127) without running.
        func abandon() {
            if startFd >= 0 { close(startFd) }
            if syncFd >= 0 { close(syncFd) }
            startFd = -1
            syncFd = -1
        }
    }

    /// Clones a container's init process (new namespaces, rootfs, mounts, pivot_root)
    /// and waits until it is set up and waiting for `start`. `sharedNamespaceFds`: the
    /// namespaces of another container of the sandbox it joins instead of new ones.
    static func createInit(_ plan: ContainerPlan, sharedNamespaceFds: [Int32] = [], io: ProcessIO, cgroupProcs: [String],
                           table: ProcessTable) throws(AgentError) -> PendingStart {
        let arena = SpawnArena()
        var config = agent_spawn_config()
        config.clone_flags = plan.cloneFlags
        config.pid_fd = -1
        config.join_root_fd = -1
        config.share_ns_fds = arena.array(sharedNamespaceFds)
        config.share_ns_count = Int32(sharedNamespaceFds.count)
        config.rootfs = arena.string(plan.rootfs)
        let mounts = plan.mounts.map { m in
            agent_mount(source: arena.optionalString(m.source), target: arena.string(m.target),
                        fstype: arena.optionalString(m.fstype), flags: m.flags, data: arena.optionalString(m.data),
                        remount_flags: m.remountFlags, propagation: m.propagation, is_file: m.isFile ? 1 : 0)
        }
        config.mounts = arena.array(mounts)
        config.mount_count = Int32(mounts.count)
        let links = plan.symlinks.map { agent_symlink(target: arena.string($0.target), path: arena.string($0.path)) }
        config.symlinks = arena.array(links)
        config.symlink_count = Int32(links.count)
        config.masked_paths = arena.stringArray(plan.maskedPaths)
        config.masked_count = Int32(plan.maskedPaths.count)
        config.readonly_paths = arena.stringArray(plan.readonlyPaths)
        config.readonly_count = Int32(plan.readonlyPaths.count)
        config.readonly_rootfs = plan.readonlyRootfs ? 1 : 0
        config.hostname = arena.optionalString(plan.hostname)
        let devices = plan.devices.map { d in
            agent_device(path: arena.string(d.target), mode: d.mode, major: d.major, minor: d.minor, uid: d.uid, gid: d.gid)
        }
        config.devices = arena.array(devices)
        config.device_count = Int32(devices.count)
        config.sysctl_paths = arena.stringArray(plan.sysctls.map(\.path))
        config.sysctl_values = arena.stringArray(plan.sysctls.map(\.value))
        config.sysctl_count = Int32(plan.sysctls.count)
        var pipes = try SpawnPipes(start: true, pidReport: false)
        let result = try spawn(&config, process: plan.process, io: io, cgroupProcs: cgroupProcs, pipes: &pipes, arena: arena, table: table)
        return PendingStart(pid: result, startFd: pipes.takeStartWriter(), syncFd: pipes.takeSyncReader())
    }

    /// Runs a process inside a running container: joins the namespaces of `initPid`
    /// and its cgroups, then execs. Returns the process's pid once execve succeeded.
    static func exec(_ process: ProcessPlan, initPid: pid_t, io: ProcessIO, cgroupProcs: [String], table: ProcessTable) throws(AgentError) -> pid_t {
        // Order matters: the mount namespace last (the /proc paths are opened first anyway).
        var namespaceFds: [Int32] = []
        defer { for fd in namespaceFds { close(fd) } }
        for name in ["ipc", "uts", "cgroup", "pid", "mnt"] {
            let path = "/proc/\(initPid)/ns/\(name)"
            let mine = "/proc/self/ns/\(name)"
            // Skip namespaces the container shares with the agent.
            if let a = namespaceIdentity(path), let b = namespaceIdentity(mine), a == b { continue }
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw .errno("open \(path)") }
            namespaceFds.append(fd)
        }
        let rootPath = "/proc/\(initPid)/root"
        let rootFd = open(rootPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFd >= 0 else { throw .errno("open \(rootPath)") }
        defer { close(rootFd) }
        let arena = SpawnArena()
        var config = agent_spawn_config()
        config.clone_flags = 0
        config.join_root_fd = rootFd
        config.join_ns_fds = arena.array(namespaceFds)
        config.join_ns_count = Int32(namespaceFds.count)
        var pipes = try SpawnPipes(start: false, pidReport: true)
        config.pid_fd = pipes.pidWriter
        let intermediate = try spawn(&config, process: process, io: io, cgroupProcs: cgroupProcs, pipes: &pipes, arena: arena, table: table)
        // The intermediate child forks the process into the PID namespace, reports its
        // pid and exits.
        var pid: Int32 = 0
        let n = withUnsafeMutableBytes(of: &pid) { raw in readFully(pipes.pidReader, raw) }
        let syncFd = pipes.takeSyncReader()
        defer { close(syncFd) }
        if n != 4 {
            _ = table.waitForExit(intermediate)
            throw readReport(syncFd) ?? .system(errno: ECHILD, "the exec helper child exited early")
        }
        table.watch(pid)
        if io.terminal {
            do {
                try io.receiveTerminal()
            } catch {
                if let failure = readReport(syncFd) { _ = table.waitForExit(pid); throw failure }
                throw error
            }
        }
        if let failure = readReport(syncFd) {
            _ = table.waitForExit(pid)
            throw failure
        }
        return pid
    }

    private static func spawn(_ config: inout agent_spawn_config, process: ProcessPlan, io: ProcessIO, cgroupProcs: [String],
                              pipes: inout SpawnPipes, arena: SpawnArena, table: ProcessTable) throws(AgentError) -> pid_t {
        var cgroupFds: [Int32] = []
        defer { for fd in cgroupFds { close(fd) } }
        for path in cgroupProcs {
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw .errno("open \(path)") }
            cgroupFds.append(fd)
        }
        config.cgroup_procs_fds = arena.array(cgroupFds)
        config.cgroup_procs_count = Int32(cgroupFds.count)
        config.cwd = arena.string(process.cwd)
        config.argv = arena.stringArray(process.argv)
        config.envp = arena.stringArray(process.env)
        config.search_path = arena.string(process.searchPath)
        config.uid = process.uid
        config.gid = process.gid
        config.groups = arena.array(process.groups)
        config.group_count = Int32(process.groups.count)
        let limits = process.rlimits.map { agent_rlimit(resource: $0.resource, soft: $0.soft, hard: $0.hard) }
        config.rlimits = arena.array(limits)
        config.rlimit_count = Int32(limits.count)
        if let caps = process.capabilities {
            config.set_capabilities = 1
            config.cap_bounding = caps.bounding
            config.cap_effective = caps.effective
            config.cap_permitted = caps.permitted
            config.cap_inheritable = caps.inheritable
            config.cap_ambient = caps.ambient
        }
        config.cap_last = Int32(process.capLast)
        config.no_new_privileges = process.noNewPrivileges ? 1 : 0
        if let adj = process.oomScoreAdj {
            config.oom_score_adj_set = 1
            config.oom_score_adj = Int32(adj)
        }
        config.stdin_fd = io.childStdin
        config.stdout_fd = io.childStdout
        config.stderr_fd = io.childStderr
        config.terminal = io.terminal ? 1 : 0
        config.console_socket = io.terminal ? io.childConsoleSocket : -1
        if let size = process.consoleSize {
            config.console_rows = UInt16(clamping: size.rows)
            config.console_columns = UInt16(clamping: size.columns)
        }
        config.sync_fd = pipes.syncWriter
        config.start_fd = pipes.startReader

        let pid = table.spawning { withUnsafePointer(to: &config) { agent_spawn($0) } }
        let spawnErrno = errno
        pipes.closeChildEnds()
        io.closeChildEnds()
        guard pid > 0 else { throw .system(errno: spawnErrno, "clone") }
        if config.start_fd >= 0 {
            // The init reports "ready" (set up, waiting for start) or a failure.
            var report = [UInt8](repeating: 0, count: MemoryLayout<agent_spawn_report>.size)
            let n = report.withUnsafeMutableBytes { readFully(pipes.syncReader, $0) }
            if n != report.count {
                let status = table.waitForExit(pid)
                throw .system(errno: ECHILD, "the container process died while being set up (wait status \(status))")
            }
            if let failure = decodeReport(report) {
                _ = table.waitForExit(pid)
                throw failure
            }
            // Sent before the ready report.
            try io.receiveTerminal()
        }
        return pid
    }

    /// nil when the pipe reached end of file (the program was exec'd), else the failure.
    static func readReport(_ fd: Int32) -> AgentError? {
        var report = [UInt8](repeating: 0, count: MemoryLayout<agent_spawn_report>.size)
        let n = report.withUnsafeMutableBytes { readFully(fd, $0) }
        if n == 0 { return nil }
        if n != report.count { return .system(errno: EIO, "short report from the container process") }
        return decodeReport(report) ?? .system(errno: EIO, "unexpected ready report")
    }

    private static func decodeReport(_ bytes: [UInt8]) -> AgentError? {
        let code = Int32(bitPattern: UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24)
        if code == 0 { return nil }
        let step = String(decoding: bytes[4...].prefix(while: { $0 != 0 }), as: UTF8.self)
        if step.hasPrefix("execve") && (code == ENOENT || code == EACCES) {
            return .invalid("\(step): \(String(cString: strerror(code))) (errno \(code))")
        }
        return .system(errno: code, "container process: \(step)")
    }

    private static func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Int {
        var offset = 0
        while offset < buffer.count {
            let n = read(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            offset += n
        }
        return offset
    }

    private static func namespaceIdentity(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = readlink(path, &buffer, 63)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// The control pipes between the agent and one child: sync (reports, close-on-exec),
/// start (init only) and pid (exec only). All close-on-exec.
struct SpawnPipes: ~Copyable {
    var syncReader: Int32 = -1, syncWriter: Int32 = -1
    var startReader: Int32 = -1, startWriter: Int32 = -1
    var pidReader: Int32 = -1, pidWriter: Int32 = -1

    init(start: Bool, pidReport: Bool) throws(AgentError) {
        var fds: [Int32] = [-1, -1]
        guard agent_pipe_cloexec(&fds) == 0 else { throw .errno("pipe") }
        syncReader = fds[0]; syncWriter = fds[1]
        if start {
            guard agent_pipe_cloexec(&fds) == 0 else { throw .errno("pipe") }
            startReader = fds[0]; startWriter = fds[1]
        }
        if pidReport {
            guard agent_pipe_cloexec(&fds) == 0 else { throw .errno("pipe") }
            pidReader = fds[0]; pidWriter = fds[1]
        }
    }

    mutating func closeChildEnds() {
        for fd in [syncWriter, startReader, pidWriter] where fd >= 0 { close(fd) }
        syncWriter = -1; startReader = -1; pidWriter = -1
    }

    mutating func takeSyncReader() -> Int32 { defer { syncReader = -1 }; return syncReader }
    mutating func takeStartWriter() -> Int32 { defer { startWriter = -1 }; return startWriter }

    deinit {
        for fd in [syncReader, syncWriter, startReader, startWriter, pidReader, pidWriter] where fd >= 0 { close(fd) }
    }
}
