#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One process of a container (its init, or one ExecProcess): pid, stdio, and the exit
/// status once the `ProcessTable` has it.
final class ContainerProcess: Sendable {
    let execID: String
    let pid: pid_t
    let io: ProcessIO
    private let table: ProcessTable

    init(execID: String, pid: pid_t, io: ProcessIO, table: ProcessTable) {
        self.execID = execID
        self.pid = pid
        self.io = io
        self.table = table
    }

    var hasExited: Bool { table.exitStatus(pid) != nil }

    /// Blocks until the process exits; the OCI exit code (128+signal when signalled).
    func waitForExitCode() -> Int32 {
        exitCode(fromWaitStatus: table.waitForExit(pid))
    }

    func signal(_ number: Int32) throws(AgentError) {
        guard !hasExited else { throw .notFound("process \(execID) (pid \(pid)) has exited") }
        guard kill(pid, number) == 0 else { throw .errno("kill(\(pid), \(number))") }
    }
}
