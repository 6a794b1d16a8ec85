#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import AgentProtocol
import OCI

/// Everything the agent runs: the containers by id, the sandbox-wide storages, and the
/// state directory (container directories, files copied in by CopyFile). Container ids
/// are reserved while a CreateContainer is in progress, so that two requests for one id
/// cannot both proceed.
final class Sandbox: @unchecked Sendable {  // every var under `monitor`; the rest is `let`
    let processes: ProcessTable
    let log: AgentLog
    let stateDirectory: String
    let cgroupLayout: CgroupLayout
    /// The cgroup (below the agent's own, in each hierarchy) that holds the containers'.
    let cgroupParent: String
    private let monitor = Monitor()
    private var containers: [String: Container] = [:]
    private var reserved: Set<String> = []
    private var sandboxStorages: [String] = []

    /// The agent is the VM's init: the guest's network is the sandbox's own.
    let ownsNetwork: Bool

    init(processes: ProcessTable, log: AgentLog, stateDirectory: String, cgroupParent: String, ownsNetwork: Bool = false) {
        self.ownsNetwork = ownsNetwork
        self.processes = processes
        self.log = log
        self.stateDirectory = stateDirectory
        self.cgroupLayout = CgroupLayout.detect()
        self.cgroupParent = cgroupParent
        log.info("cgroups: \(cgroupLayout.summary)")
    }

    static func validate(id: String) throws(AgentError) {
        let allowed = id.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == 0x2d || byte == 0x5f || byte == 0x2e
        }
        guard !id.isEmpty, id.utf8.count <= 128, allowed, id != ".", id != ".." else {
            throw .invalid("invalid container id \"\(id)\": 1 to 128 of [A-Za-z0-9_.-]")
        }
    }

    func container(_ id: String) throws(AgentError) -> Container {
        let found = monitor.locked { containers[id] }
        guard let found else { throw .notFound("no container \(id)") }
        return found
    }

    var allContainers: [Container] { monitor.locked { Array(containers.values) } }

    // MARK: Sandbox

    func createSandbox(_ request: Grpc_CreateSandboxRequest) throws(AgentError) {
        if !request.hostname.isEmpty {
            guard request.hostname.utf8.count <= 64 else { throw .invalid("hostname longer than 64 bytes") }
            guard sethostname(request.hostname, request.hostname.utf8.count) == 0 else { throw .errno("sethostname") }
        }
        try makeDirectories(stateDirectory)
        var mounted: [String] = []
        do {
            for storage in request.storages {
                if let target = try StorageMount.mount(storage) { mounted.append(target) }
            }
        } catch {
            for target in mounted.reversed() { StorageMount.unmount(target) }
            throw error
        }
        monitor.locked { sandboxStorages.append(contentsOf: mounted) }
    }

    /// Removes every container and unmounts the sandbox storages.
    func destroy() {
        for container in allContainers {
            do {
                try removeContainer(container.id, timeoutMilliseconds: 10_000)
            } catch {
                log.error("removing \(container.id): \(error)")
            }
        }
        let storages = monitor.locked { () -> [String] in
            defer { sandboxStorages.removeAll() }
            return sandboxStorages
        }
        for target in storages.reversed() { StorageMount.unmount(target) }
        // The (now empty) cgroup that held the containers' cgroups.
        for placement in Set(cgroupLayout.placements.values.map(\.directory)) {
            rmdir(placement + "/" + cgroupParent)
        }
        if let unified = cgroupLayout.unifiedDirectory { rmdir(unified + "/" + cgroupParent) }
    }

    // MARK: Containers

    func createContainer(_ request: Grpc_CreateContainerRequest) throws(AgentError) {
        let id = request.containerID
        try Sandbox.validate(id: id)
        try monitor.locked { () throws(AgentError) in
            if containers[id] != nil || reserved.contains(id) { throw .exists("container \(id) exists") }
            reserved.insert(id)
        }
        defer { monitor.locked { _ = reserved.remove(id) } }

        let directory = stateDirectory + "/" + id
        try makeDirectories(directory)
        var mounted: [String] = []
        var cgroup: ContainerCgroup?
        do {
            for storage in request.storages {
                if let target = try StorageMount.mount(storage) { mounted.append(target) }
            }
            let spec = try Spec.decode(request.ociSpecJson, as: "OCI spec")
            let plan = try ContainerPlan(spec: spec, rootfsBase: directory, ownsNetwork: ownsNetwork)
            let shared = try sharedNamespaces(plan.joins)
            defer { for fd in shared { close(fd) } }
            let group = try ContainerCgroup(layout: cgroupLayout, parentName: cgroupParent, name: id, resources: plan.resources)
            cgroup = group
            let io = try ProcessIO(terminal: plan.process.terminal)
            let pending = try ProcessSpawner.createInit(plan, sharedNamespaceFds: shared, io: io, cgroupProcs: group.procsFiles,
                                                        table: processes)
            let execID = request.execID.isEmpty ? id : request.execID
            let process = ContainerProcess(execID: execID, pid: pending.pid, io: io, table: processes)
            let container = Container(id: id, execID: execID, cgroup: group, initProcess: process,
                                      pendingStart: pending, storages: mounted, table: processes)
            monitor.locked { containers[id] = container }
            log.debug("created container \(id): init pid \(pending.pid)")
        } catch {
            cgroup?.destroy()
            for target in mounted.reversed() { StorageMount.unmount(target) }
            rmdir(directory)
            throw error
        }
    }

    /// The namespaces a container joins from others of the sandbox, opened through their
    /// init processes, which must still run (a pod's pause container holds them).
    func sharedNamespaces(_ joins: [(type: String, container: String)]) throws(AgentError) -> [Int32] {
        var fds: [Int32] = []
        do throws(AgentError) {
            for join in joins {
                let holder = try container(join.container)
                guard holder.state != .stopped else {
                    throw .precondition("container \(join.container), whose \(join.type) namespace this one joins, has stopped")
                }
                let path = "/proc/\(holder.initProcess.pid)/ns/\(join.type)"
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw .errno("open \(path)") }
                fds.append(fd)
                // A container without a namespace of that type of its own is in the agent's:
                // joining it would let a spec set the agent's hostname or IPC limits.
                var joined = stat(), mine = stat()
                guard fstat(fd, &joined) == 0, stat("/proc/self/ns/\(join.type)", &mine) == 0 else { throw .errno("stat \(path)") }
                guard joined.st_dev != mine.st_dev || joined.st_ino != mine.st_ino else {
                    throw .invalid("container \(join.container) has no \(join.type) namespace of its own to share")
                }
            }
        } catch {
            for fd in fds { close(fd) }
            throw error
        }
        return fds
    }

    func removeContainer(_ id: String, timeoutMilliseconds: Int) throws(AgentError) {
        let container = try self.container(id)
        try container.destroy(timeoutMilliseconds: timeoutMilliseconds)
        monitor.locked { _ = containers.removeValue(forKey: id) }
        rmdir(stateDirectory + "/" + id)
    }

    func execProcess(_ request: Grpc_ExecProcessRequest) throws(AgentError) {
        let container = try self.container(request.containerID)
        try container.reserveExec(request.execID)
        let plan = try ProcessPlan(try Spec.Process.decode(request.processJson, as: "OCI process"))
        let io = try ProcessIO(terminal: plan.terminal)
        let pid = try ProcessSpawner.exec(plan, initPid: container.initProcess.pid, io: io,
                                          cgroupProcs: container.cgroup.procsFiles, table: processes)
        do {
            try container.addExec(ContainerProcess(execID: request.execID, pid: pid, io: io, table: processes))
        } catch {
            kill(pid, SIGKILL)
            throw error
        }
    }

    /// New limits for a container's cgroup.
    func updateContainer(_ request: Grpc_UpdateContainerRequest) throws(AgentError) {
        let container = try container(request.containerID)
        try container.cgroup.apply(try Spec.Resources.decode(request.resourcesJson, as: "resources"))
    }

    /// Pause (true) or resume (false): the container's cgroup frozen or thawed.
    func setPaused(_ id: String, _ paused: Bool) throws(AgentError) {
        try container(id).cgroup.setFrozen(paused)
    }

    func process(_ containerID: String, _ execID: String) throws(AgentError) -> ContainerProcess {
        try container(containerID).process(execID)
    }
}
