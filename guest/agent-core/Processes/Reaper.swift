#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CAgentSpawn

/// Reaps every child of the agent: its containers' processes and, as PID 1 (or as the
/// child subreaper it makes itself on a host), every orphan. One thread blocks in
/// waitpid(-1) and hands each exit to the `ProcessTable`.
enum Reaper {
    static func start(table: ProcessTable, log: AgentLog) {
        if !GuestInit.isPID1 && agent_set_subreaper() != 0 {
            log.error("PR_SET_CHILD_SUBREAPER: \(String(cString: strerror(errno)))")
        }
        do {
            try DetachedThread.start {
                var status: Int32 = 0
                while true {
                    let pid = waitpid(-1, &status, 0)
                    if pid > 0 {
                        table.recordExit(pid: pid, status: status)
                    } else if errno == ECHILD {
                        table.waitForChildren(milliseconds: 200)
                    } else if errno != EINTR {
                        log.error("waitpid: \(String(cString: strerror(errno)))")
                        table.waitForChildren(milliseconds: 200)
                    }
                }
            }
        } catch {
            AgentLog.fatal("cannot start the reaper: \(error)")
        }
    }
}
