#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One container in the sandbox: its init process (created, then started), the
/// processes exec'd into it, its cgroups and the storages mounted for it.
final class Container: @unchecked Sendable {  // every var under `monitor`; the rest is `let`
    enum State { case created, running, stopped }

    let id: String
    let execID: String
    let cgroup: ContainerCgroup
    let initProcess: ContainerProcess
    let storages: [String]
    private let monitor = Monitor()
    private var pendingStart: ProcessSpawner.PendingStart?
    private var execs: [String: ContainerProcess] = [:]
    private var startedAt = false
    private let table: ProcessTable

    init(id: String, execID: String, cgroup: ContainerCgroup, initProcess: ContainerProcess,
         pendingStart: ProcessSpawner.PendingStart, storages: [String], table: ProcessTable) {
        self.table = table
        self.id = id
        self.execID = execID
        self.cgroup = cgroup
        self.initProcess = initProcess
        self.pendingStart = pendingStart
        self.storages = storages
    }

    var state: State {
        monitor.locked {
            if initProcess.hasExited { return .stopped }
            return startedAt ? .running : .created
        }
    }

    func start() throws(AgentError) {
        let pending: ProcessSpawner.PendingStart? = monitor.locked {
            defer { pendingStart = nil }
            return pendingStart
        }
        guard let pending else { throw .precondition("container \(id) was already started") }
        try pending.start()
        monitor.locked { startedAt = true }
    }

    /// The process for an exec id ("" or the container's own exec id: the init).
    func process(_ execID: String) throws(AgentError) -> ContainerProcess {
        if execID.isEmpty || execID == self.execID { return initProcess }
        let found = monitor.locked { execs[execID] }
        guard let found else { throw .notFound("no process \(execID) in container \(id)") }
        return found
    }

    func reserveExec(_ execID: String) throws(AgentError) {
        guard state == .running else { throw .precondition("container \(id) is not running") }
        guard execID != self.execID, !execID.isEmpty else { throw .invalid("exec id \(execID) is taken by the container") }
        if monitor.locked({ execs[execID] != nil }) { throw .exists("exec id \(execID) exists in container \(id)") }
    }

    func addExec(_ process: ContainerProcess) throws(AgentError) {
        try monitor.locked { () throws(AgentError) in
            if execs[process.execID] != nil { throw .exists("exec id \(process.execID) exists in container \(id)") }
            execs[process.execID] = process
        }
    }

    /// Sends `number` to every process in the container's cgroup (runc's kill --all).
    func signalAll(_ number: Int32) throws(AgentError) {
        let pids = cgroup.pids()
        guard !pids.isEmpty else { throw .notFound("container \(id) has no processes") }
        for pid in pids where kill(pid, number) != 0 && errno != ESRCH {
            throw .errno("kill(\(pid), \(number))")
        }
    }

    /// Kills every process of the container, waits up to `timeoutMilliseconds` for the
    /// init to be reaped, releases the cgroups and unmounts the storages.
    func destroy(timeoutMilliseconds: Int) throws(AgentError) {
        monitor.locked {
            pendingStart?.abandon()
            pendingStart = nil
        }
        if !initProcess.hasExited { kill(initProcess.pid, SIGKILL) }
        cgroup.killAll()
        if initProcess.hasExited == false {
            guard table.waitForExit(initProcess.pid, milliseconds: timeoutMilliseconds) != nil else {
                throw .system(errno: ETIMEDOUT, "container \(id) did not exit after SIGKILL")
            }
        }
        cgroup.destroy()
        for target in storages.reversed() { StorageMount.unmount(target) }
    }

}
