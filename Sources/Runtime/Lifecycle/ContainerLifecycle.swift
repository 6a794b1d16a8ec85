import AgentProtocol
import Foundation
import HostInput
import Glibc
import OCI
import LinuxSupport

/// The OCI lifecycle of one container in its own microVM: create (boot the sandbox, create
/// the container in the guest, start the process shim, run the create hooks), start,
/// kill, delete (stop everything, remove every trace, poststop hooks), exec and ps. Each
/// operation takes the container's lock.
public struct ContainerLifecycle {
    public let context: RuntimeContext
    var store: StateStore { context.store }

    public init(context: RuntimeContext) { self.context = context }

    public struct CreateOptions {
        public var bundle: String
        public var pidFile: String?
        public var consoleSocket: String?
        /// The fds the container's stdio comes from (the caller's 0, 1, 2).
        public var stdio: (Int32, Int32, Int32) = (0, 1, 2)
        /// `run` in the foreground with a terminal: the caller's own terminal is used.
        public var useCallerTerminal = false

        public init(bundle: String, pidFile: String?, consoleSocket: String?) {
            self.bundle = bundle
            self.pidFile = pidFile
            self.consoleSocket = consoleSocket
        }
    }

    // MARK: create

    /// Returns the init process shim's pid.
    @discardableResult
    public func create(id: String, options: CreateOptions) throws -> Int32 {
        try StateStore.validate(id: id)
        context.config.warnings.forEach(context.warn)
        let bundle = try OCIBundle(path: options.bundle)
        guard let process = bundle.spec.process else { throw RuntimeError("\(bundle.path)/config.json: process: missing") }
        let terminal = process.terminal ?? false
        if terminal && options.consoleSocket == nil && !options.useCallerTerminal {
            throw RuntimeError("cannot allocate tty if runc will detach without setting console socket")
        }
        if !terminal && options.consoleSocket != nil {
            throw RuntimeError("cannot use console socket if runc will not detach or allocate tty")
        }
        if store.exists(id) { throw RuntimeError("container with id exists: \(id)") }
        let stateDir = try store.createDirectory(for: id)
        var record = ContainerRecord(id: id, bundle: bundle.path, rootfs: bundle.rootfsPath, stateDir: stateDir,
                                     socketDir: store.socketDirectory(of: id), annotations: bundle.spec.annotations)
        do {
            return try store.withLock(id) {
                try createLocked(&record, bundle: bundle, terminal: terminal, options: options)
            }
        } catch {
            // Undo everything: a failed create leaves nothing behind (runc's behaviour).
            destroy(record, runPoststop: false)
            throw error
        }
    }

    /// The other containers of this root and their live host-side processes (monitor,
    /// init shim, exec shims): the pids whose namespaces a spec must not join.
    func otherContainers(than id: String) -> [(id: String, pids: [Int32])] {
        store.list().filter { $0 != id }.compactMap { other in
            guard let record = try? store.load(other) else { return nil }
            let processes = [record.monitor, record.initProcess].compactMap { $0 } + Array(record.execProcesses.values)
            return (other, processes.filter(\.isAlive).map(\.pid))
        }
    }

    private func createLocked(_ record: inout ContainerRecord, bundle: OCIBundle, terminal: Bool, options: CreateOptions) throws -> Int32 {
        let debugSocket = context.config.agent.debugAgentSocket
        let sandbox = try PodMembership(annotations: bundle.spec.annotations, id: record.id)
            .check(id: record.id, store: store, sharesAgent: debugSocket != nil)
        if let sandbox, debugSocket == nil {
            return try createMember(&record, of: sandbox, bundle: bundle, terminal: terminal, options: options)
        }
        let setsUpNetworking = debugSocket == nil && context.config.runtime.internetworkingModel == "tcfilter"
        // One agent serves every container of a host-agent runtime, so it can share their
        // IPC and UTS namespaces; containers in VMs of their own cannot until pods land.
        let sharedNamespaces = try NamespaceGuard.check(bundle.spec.linux?.namespaces ?? [], containers: otherContainers(than: record.id),
                                                        setsUpNetworking: setsUpNetworking, sharesWithSandbox: debugSocket != nil)
        record.agentSocket = debugSocket ?? record.vsockSocketPath
        record.agentViaHybridVsock = debugSocket == nil
        if debugSocket == nil { try SocketDirectory(path: record.socketDir, owner: record.stateDir).claim() }  // the VM's vsock socket
        try AtomicFile.write(bundle.configData, to: record.configCopyPath)
        try store.save(record)

        let hypervisor = context.config.hypervisor
        let sharedFs = hypervisor.resolvedSharedFs
        let delivery = try RootfsDelivery.choose(rootfs: bundle.rootfsPath, debugAgent: debugSocket != nil, sharedFs: sharedFs,
                                                 disableBlockDeviceUse: hypervisor.disableBlockDeviceUse)
        record.rootfsDelivery = delivery
        try store.save(record)
        if delivery == .ext4Image {
            _ = try RootfsImage.prepare(rootfs: bundle.rootfsPath, imagePath: record.rootfsImagePath,
                                        cache: store.rootfsImageCache, log: context.debug)
        }
        let guestRoot: String
        switch delivery {
        case .hostDirectory: guestRoot = bundle.rootfsPath
        case .virtioFs: guestRoot = GuestSpec.sharedFsGuestMount + "/" + GuestSpec.sharedRootfsName(containerId: record.id)
        case .blockDevice, .ext4Image: guestRoot = GuestSpec.rootfsMountPoint(containerId: record.id)
        }
        var guestSpec = GuestSpec(bundle.spec, containerId: record.id, guestRoot: guestRoot, rewriteMounts: debugSocket == nil,
                                  sharesDirectories: sharedFs == .virtioFs)
        guestSpec.joinSandboxNamespaces(sharedNamespaces)
        guestSpec.warnings.forEach(context.warn)
        if delivery == .virtioFs || !guestSpec.sharedVolumes.isEmpty {
            try startSharedFs(&record, rootfs: delivery == .virtioFs ? bundle.rootfsPath : nil, volumes: guestSpec.sharedVolumes)
        }
        if setsUpNetworking, let netns = bundle.spec.networkNamespacePath {
            let plans = try NetworkPlan.discover(namespace: netns)
            if !plans.isEmpty {
                record.networkNamespace = netns
                record.taps = plans.map(\.tap)
                try store.save(record)
                try NetworkPlan.setUp(plans, namespace: netns, stateDir: record.stateDir)
            }
        }

        // The sandbox monitor: recorded before it boots, and tied to this create until the
        // end (a create killed at any point takes the monitor and its VM with it).
        let link = try CreatorLink()
        defer { link.close() }
        try startMonitor(&record, link: link)

        // The container inside the guest.
        var storages: [Grpc_Storage] = []
        if delivery.usesDisk {
            var storage = Grpc_Storage()
            storage.driver = "blk"
            storage.source = delivery == .blockDevice ? "/dev/vda" : RootfsImage.diskSerial
            storage.fstype = "ext4"
            storage.mountPoint = guestRoot
            storages = [storage]
        }
        try createInGuest(record, guestSpec: guestSpec, storages: storages)

        // The init process shim: the pid the caller sees.
        guard mkfifo(record.startFifoPath, 0o600) == 0 else { throw SystemError("mkfifo \(record.startFifoPath)") }
        let shim = try startShim(record, execId: "", terminal: terminal, consoleSocket: options.consoleSocket,
                                 stdio: options.stdio, startFifo: record.startFifoPath,
                                 consoleSize: bundle.spec.process?.consoleSize)
        record.initProcess = shim
        try store.save(record)

        let hooks = bundle.spec.hooks
        let runner = HookRunner(warn: context.warn)
        var state = StateStore.ociState(record)
        state.status = .creating
        try runner.run(.prestart, hooks: hooks, state: state)
        try runner.run(.createRuntime, hooks: hooks, state: state)
        try runner.run(.createContainer, hooks: hooks, state: state)

        record.status = .created
        try store.save(record)
        if let pidFile = options.pidFile { try Self.writePidFile(pidFile, pid: shim.pid) }
        try link.confirm()
        return shim.pid
    }

    /// The sandbox's virtio-fs share: the shared directory, the rootfs and volumes bound
    /// in it, then its virtiofsd (recorded at once), which must see the binds: its mount
    /// namespace is a copy taken when it starts.
    func startSharedFs(_ record: inout ContainerRecord, rootfs: String?, volumes: [GuestSpec.SharedVolume]) throws {
        let share = try SharedDirectory.create(at: record.sharedDirectoryPath)
        if let rootfs { try share.bind(rootfs, at: GuestSpec.sharedRootfsName(containerId: record.id), readOnly: false, recursive: true) }
        for volume in volumes {
            try share.bind(volume.hostPath, at: volume.name, readOnly: volume.readOnly, recursive: volume.recursive)
        }
        let hypervisor = context.config.hypervisor
        record.virtiofsdExecutable = hypervisor.virtioFsDaemon
        let options = VirtiofsDaemon.Options(executable: hypervisor.virtioFsDaemon, source: share.path,
                                             socketPath: record.virtiofsSocketPath, cache: hypervisor.virtioFsCache,
                                             extraArgs: hypervisor.virtioFsExtraArgs)
        try VirtiofsDaemon.start(options, logPath: record.virtiofsLogPath) { identity in
            record.virtiofsd = identity
            try store.save(record)
        }
    }

    /// The copied files, then CreateContainer, on one agent connection.
    func createInGuest(_ record: ContainerRecord, guestSpec: GuestSpec, storages: [Grpc_Storage]) throws {
        let session = try AgentSession(endpoint: record.agentEndpoint)
        defer { session.close() }
        for file in guestSpec.copiedFiles { try copyFile(file, session: session) }
        var request = Grpc_CreateContainerRequest()
        request.containerID = record.id
        request.ociSpecJson = try guestSpec.json
        request.storages = storages
        try session.call("CreateContainer") { client in try client.createContainer(request) }
    }

    func copyFile(_ file: GuestSpec.CopiedFile, session: AgentSession) throws {
        let data: Data
        do { data = Data(try CheckedFile.read(file.hostPath, role: "bind mount source", limit: 1 << 20)) } catch {
            throw RuntimeError("\(error) (bind-mounted files are copied into the guest)")
        }
        var request = Grpc_CopyFileRequest()
        request.path = file.guestPath
        request.fileSize = Int64(data.count)
        request.fileMode = 0o644
        request.dirMode = 0o755
        request.offset = 0
        request.data = data
        try session.call("CopyFile \(file.hostPath)") { client in try client.copyFile(request) }
    }

    static func writePidFile(_ path: String, pid: Int32) throws {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        try AtomicFile.write(Data(String(pid).utf8), to: absolute, mode: 0o644)
    }

    /// Re-executes the runtime as the sandbox monitor (own session, stdio to monitor.log),
    /// records it (so that `delete --force` finds it whatever happens next) and waits for
    /// its readiness line.
    func startMonitor(_ record: inout ContainerRecord, link: CreatorLink) throws {
        let ready = try FileDescriptors.pipe()
        let log = open(record.monitorLogPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer {
            close(log)
            close(devNull)
            close(ready.read)
        }
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(path: context.executable,
                                           argv: ["kata-runtime"] + context.globalArguments + ["sandbox-monitor", record.id],
                                           env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                                           fds: [0: devNull, 1: log, 2: log, 3: ready.write, CreatorLink.monitorFd: link.readEnd],
                                           newSession: true)
        } catch {
            close(ready.write)
            throw error
        }
        close(ready.write)
        link.monitorStarted()
        record.monitor = ProcessIdentity.of(child.pid) ?? ProcessIdentity(pid: child.pid, startTime: 0)
        try store.save(record)
        let line = String(decoding: (try? FileDescriptors.readAll(ready.read, limit: 4096)) ?? [], as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard line == "ready" else {
            _ = try? child.poll()
            // The state dir goes away with the failed create: keep the guest's and the
            // monitor's last words.
            if let console = LogTail.lastLines(of: record.consoleLogPath, count: 25) {
                context.warn("sandbox \(record.id): the guest console's last lines:\n\(console)")
            }
            if let monitor = LogTail.lastLines(of: record.monitorLogPath, count: 10) {
                context.warn("sandbox \(record.id): the monitor's last lines:\n\(monitor)")
            }
            let detail = line.hasPrefix("error: ") ? String(line.dropFirst(7)) : "the sandbox monitor exited"
            throw RuntimeError("starting the sandbox: \(detail)")
        }
        // Reaped by whoever adopts it: this process exits soon (create) or waits on its shim (run).
    }

    /// Starts a process shim with the caller's stdio (or a new terminal whose master goes
    /// to the console socket).
    func startShim(_ record: ContainerRecord, execId: String, terminal: Bool, consoleSocket: String?,
                   stdio: (Int32, Int32, Int32), startFifo: String?, consoleSize: Spec.ConsoleSize?) throws -> ProcessIdentity {
        var fds: [Int32: Int32] = [0: stdio.0, 1: stdio.1, 2: stdio.2]
        var pty: PseudoTerminal?
        if terminal, let consoleSocket {
            let terminal = try PseudoTerminal()
            if let size = consoleSize { terminal.setSize(rows: UInt16(clamping: size.height), columns: UInt16(clamping: size.width)) }
            try terminal.sendMaster(to: consoleSocket)
            fds = [0: terminal.slave, 1: terminal.slave, 2: terminal.slave]
            pty = terminal
        }
        defer { _ = pty }
        var argv = ["kata-runtime"] + context.globalArguments + ["process-shim"]
        if terminal { argv.append("--terminal") }
        if let startFifo { argv += ["--start-fifo", startFifo] }
        if !execId.isEmpty { argv += ["--exec-id", execId] }
        argv.append(record.id)
        let child = try ChildProcess.spawn(path: context.executable, argv: argv, env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                                           fds: fds, newSession: true)
        return ProcessIdentity.of(child.pid) ?? ProcessIdentity(pid: child.pid, startTime: 0)
    }

    // MARK: start

    public func start(id: String) throws {
        try store.withLock(id) {
            var record = try store.load(id)
            let status = StateStore.effectiveStatus(record)
            guard status == .created else {
                if status == .stopped { throw RuntimeError("cannot start a container that has stopped") }
                throw RuntimeError("cannot start a container in the \(status.rawValue) state")
            }
            let spec = try savedSpec(record)
            let runner = HookRunner(warn: context.warn)
            try runner.run(.startContainer, hooks: spec.hooks, state: StateStore.ociState(record))
            let session = try AgentSession(endpoint: record.agentEndpoint)
            defer { session.close() }
            var request = Grpc_StartContainerRequest()
            request.containerID = id
            try session.call("StartContainer") { client in try client.startContainer(request) }
            try releaseInitShim(record)
            record.status = .running
            try store.save(record)
            try? runner.run(.poststart, hooks: spec.hooks, state: StateStore.ociState(record))
        }
    }

    /// Lets the init shim relay: it blocks opening the start fifo for reading. It may not
    /// have got there yet (just spawned), so opening for writing is retried while it lives.
    func releaseInitShim(_ record: ContainerRecord) throws {
        defer { unlink(record.startFifoPath) }
        let deadline = Date().addingTimeInterval(30)
        while true {
            let fd = open(record.startFifoPath, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
            if fd >= 0 {
                defer { close(fd) }
                try FileDescriptors.writeAll(fd, [0])
                return
            }
            guard errno == ENXIO, let shim = record.initProcess, shim.isAlive, Date() < deadline else {
                throw SystemError("releasing the container's process (\(record.startFifoPath))")
            }
            usleep(2_000)
        }
    }

    func savedSpec(_ record: ContainerRecord) throws -> Spec {
        guard let data = FileManager.default.contents(atPath: record.configCopyPath) else {
            throw RuntimeError("\(record.configCopyPath): missing")
        }
        return try OCIBundle.decode(data, file: record.configCopyPath)
    }

    // MARK: kill

    public func kill(id: String, signal: Int32, all: Bool) throws {
        try store.withLock(id) {
            let record = try store.load(id)
            let status = StateStore.effectiveStatus(record)
            guard status == .created || status == .running || status == .paused else { throw RuntimeError("container not running") }
            do {
                let session = try AgentSession(endpoint: record.agentEndpoint, timeout: .seconds(10))
                defer { session.close() }
                var request = Grpc_SignalProcessRequest()
                request.containerID = id
                request.signal = UInt32(signal)
                request.all = all
                try session.call("SignalProcess") { client in try client.signalProcess(request) }
                if status == .created && (signal == SIGKILL || signal == SIGTERM), let shim = record.initProcess, shim.isAlive {
                    // Not started yet: the shim waits on the start fifo, not on the process.
                    Glibc.kill(shim.pid, SIGKILL)
                }
            } catch {
                // The sandbox is unreachable: the host-side processes are what callers see.
                guard signal == SIGKILL || signal == SIGTERM, let shim = record.initProcess, shim.isAlive else { throw error }
                context.warn("\(error); stopping the container's host process instead")
                Glibc.kill(shim.pid, SIGKILL)
            }
        }
    }

    // MARK: pause, resume

    /// Freezes the container's processes in the guest (the agent's cgroup freezer), as
    /// runc's pause does on the host; the VM itself keeps running (the agent answers).
    public func pause(id: String) throws {
        try store.withLock(id) {
            var record = try store.load(id)
            let status = StateStore.effectiveStatus(record)
            guard status == .running else { throw RuntimeError("container not running") }
            try setFrozen(record, true)
            record.status = .paused
            try store.save(record)
        }
    }

    public func resume(id: String) throws {
        try store.withLock(id) {
            var record = try store.load(id)
            guard StateStore.effectiveStatus(record) == .paused else { throw RuntimeError("container not paused") }
            try setFrozen(record, false)
            record.status = .running
            try store.save(record)
        }
    }

    func setFrozen(_ record: ContainerRecord, _ frozen: Bool) throws {
        let session = try AgentSession(endpoint: record.agentEndpoint, timeout: .seconds(30))
        defer { session.close() }
        if frozen {
            var request = Grpc_PauseContainerRequest()
            request.containerID = record.id
            try session.call("PauseContainer") { client in try client.pauseContainer(request) }
        } else {
            var request = Grpc_ResumeContainerRequest()
            request.containerID = record.id
            try session.call("ResumeContainer") { client in try client.resumeContainer(request) }
        }
    }

    // MARK: update

    /// New cgroup limits for the container's processes in the guest (runc update). The
    /// VM keeps the memory and vCPUs it booted with: limits apply inside it.
    public func update(id: String, resources: Spec.Resources) throws {
        try store.withLock(id) {
            let record = try store.load(id)
            let status = StateStore.effectiveStatus(record)
            guard status == .created || status == .running || status == .paused else { throw RuntimeError("container not running") }
            let session = try AgentSession(endpoint: record.agentEndpoint, timeout: .seconds(30))
            defer { session.close() }
            var request = Grpc_UpdateContainerRequest()
            request.containerID = id
            request.resourcesJson = try resources.encoded()
            try session.call("UpdateContainer") { client in try client.updateContainer(request) }
        }
    }

    // MARK: delete

    public func delete(id: String, force: Bool) throws {
        do {
            try store.withLock(id) {
                let record = try store.load(id)
                let status = StateStore.effectiveStatus(record)
                if (status == .running || status == .paused) && !force {
                    throw RuntimeError("cannot delete container \(id) that is not stopped: \(status.rawValue)")
                }
                if status == .paused { try? setFrozen(record, false) }  // frozen processes would hold up the removal
                destroy(record, runPoststop: true)
                if store.exists(id) {
                    throw RuntimeError("container \(id): its shared directory \(record.sharedDirectoryPath) could not be unmounted; it is kept, run delete again")
                }
            }
        } catch let error as RuntimeError where error == .notExist(id) && force {
            // runc: deleting a missing container with --force succeeds; a half-made one
            // (no state.json yet) is removed, never through a mount.
            let directory = store.directory(of: id)
            try? SharedDirectory.remove(at: directory + "/shared")
            if MountTable.isUnmounted(directory) { try? FileManager.default.removeItem(atPath: directory) }
            store.claimedSocketDirectory(of: id).release()
        }
    }

    /// Stops and removes everything of the container; works whatever state it is in,
    /// including a dead monitor.
    func destroy(_ record: ContainerRecord, runPoststop: Bool) {
        if let sandbox = record.sandboxId {
            destroyMember(record, sandbox: sandbox)
        } else {
            destroySandbox(record)
        }
        if runPoststop, let spec = try? savedSpec(record) {
            var state = StateStore.ociState(record)
            state.status = .stopped
            state.pid = 0
            try? HookRunner(warn: context.warn).run(.poststop, hooks: spec.hooks, state: state)
        }
        store.remove(record)
    }

    /// What a container with a VM of its own leaves: the guest container, the shims, the
    /// monitor and its VM, the taps, the virtiofsd and the share.
    private func destroySandbox(_ record: ContainerRecord) {
        // A host agent (debug_agent_socket) outlives the monitor: its container is removed
        // even when a killed create or a dead monitor left it behind.
        let monitorAlive = record.monitor?.isAlive ?? false
        if !record.agentViaHybridVsock || monitorAlive && (record.status != .creating || record.initProcess != nil) {
            removeFromGuest(record)
        }
        killShims(record)
        if let monitor = record.monitor {
            Self.terminate(monitor, grace: 10)
        }
        if let netns = record.networkNamespace, !record.taps.isEmpty {
            NetworkPlan.tearDown(taps: record.taps, stateDir: record.stateDir, namespace: netns)
        }
        if let daemon = record.virtiofsd {
            VirtiofsDaemon.stop(daemon, executable: record.virtiofsdExecutable ?? context.config.hypervisor.virtioFsDaemon)
        }
        do { try SharedDirectory.remove(at: record.sharedDirectoryPath) } catch {
            context.warn("container \(record.id): its shared directory stays: \(error)")
        }
    }

    /// RemoveContainer in the guest, bounded: a dead agent costs a timeout, not a hang.
    func removeFromGuest(_ record: ContainerRecord) {
        guard let session = try? AgentSession(endpoint: record.agentEndpoint, timeout: .seconds(10)) else { return }
        var request = Grpc_RemoveContainerRequest()
        request.containerID = record.id
        request.timeout = 5
        _ = try? session.call("RemoveContainer") { client in try client.removeContainer(request) }
        session.close()
    }

    /// The container's process shims (init and execs), killed.
    func killShims(_ record: ContainerRecord) {
        for shim in [record.initProcess].compactMap({ $0 }) + Array(record.execProcesses.values) where shim.isAlive {
            Glibc.kill(shim.pid, SIGKILL)
        }
    }

    /// SIGTERM, then SIGKILL after `grace` seconds; waits until it is gone.
    static func terminate(_ process: ProcessIdentity, grace: Double) {
        guard process.isAlive else { return }
        Glibc.kill(process.pid, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while process.isAlive && Date() < deadline {
            reap(process.pid)
            usleep(20_000)
        }
        if process.isAlive { Glibc.kill(process.pid, SIGKILL) }
        let hard = Date().addingTimeInterval(5)
        while process.isAlive && Date() < hard {
            reap(process.pid)
            usleep(10_000)
        }
        reap(process.pid)
    }

    /// Collects `pid` if it is our child (run's own sandbox); harmless otherwise.
    static func reap(_ pid: Int32) {
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }

    // MARK: exec

    public struct ExecOptions {
        public var process: Spec.Process
        public var terminal: Bool
        public var detach: Bool
        public var pidFile: String?
        public var consoleSocket: String?
        public var stdio: (Int32, Int32, Int32) = (0, 1, 2)

        public init(process: Spec.Process, terminal: Bool, detach: Bool, pidFile: String?, consoleSocket: String?) {
            self.process = process
            self.terminal = terminal
            self.detach = detach
            self.pidFile = pidFile
            self.consoleSocket = consoleSocket
        }
    }

    /// Starts a process in the container; returns its shim (the caller waits on it unless detached).
    public func exec(id: String, options: ExecOptions) throws -> ProcessIdentity {
        try store.withLock(id) {
            var record = try store.load(id)
            let status = StateStore.effectiveStatus(record)
            if status == .paused { throw RuntimeError("cannot exec in a paused container") }
            guard status == .running || status == .created else { throw RuntimeError("cannot exec in a stopped container") }
            if options.terminal && options.consoleSocket == nil && options.detach {
                throw RuntimeError("cannot allocate tty if runc will detach without setting console socket")
            }
            let execId = Self.randomExecId()
            let session = try AgentSession(endpoint: record.agentEndpoint)
            defer { session.close() }
            var request = Grpc_ExecProcessRequest()
            request.containerID = id
            request.execID = execId
            request.processJson = try GuestSpec.guestProcess(options.process)
            try session.call("ExecProcess") { client in try client.execProcess(request) }
            let shim = try startShim(record, execId: execId, terminal: options.terminal, consoleSocket: options.consoleSocket,
                                     stdio: options.stdio, startFifo: nil, consoleSize: nil)
            record.execProcesses[execId] = shim
            try store.save(record)
            if let pidFile = options.pidFile { try Self.writePidFile(pidFile, pid: shim.pid) }
            return shim
        }
    }

    static func randomExecId() -> String {
        (0..<8).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    // MARK: ps

    /// The container's processes as the agent lists them (`format` json: an array of pids).
    public func processes(id: String, format: String) throws -> Data {
        let record = try store.load(id)
        let status = StateStore.effectiveStatus(record)
        guard status == .running || status == .created else { throw RuntimeError("container not running") }
        let session = try AgentSession(endpoint: record.agentEndpoint, timeout: .seconds(30))
        defer { session.close() }
        var request = Grpc_ListProcessesRequest()
        request.containerID = id
        request.format = format
        return try session.call("ListProcesses") { client in try client.listProcesses(request).processList }
    }
}
