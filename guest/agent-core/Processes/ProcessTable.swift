#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Exit statuses of the agent's children, filled by the `Reaper` and awaited by
/// WaitProcess. A pid is watched from the moment it is spawned (the spawner holds the
/// table's lock across clone and `watch`, so the reaper cannot record the exit first);
/// exits of pids that are not (yet) watched are kept in a small recent list, for
/// processes whose pid arrives over a pipe after they may already have exited.
final class ProcessTable: @unchecked Sendable {  // every var under `monitor`
    private let monitor = Monitor()
    private var watched: [pid_t: Int32?] = [:]
    private var recentUnwatched: [(pid: pid_t, status: Int32)] = []
    private var childrenSpawned = 0

    /// Runs `spawn` under the lock and watches the pid it returns (if positive).
    func spawning(_ spawn: () throws -> pid_t) rethrows -> pid_t {
        try monitor.locked {
            let pid = try spawn()
            if pid > 0 {
                watched[pid] = .some(nil)
                childrenSpawned += 1
                monitor.broadcast()
            }
            return pid
        }
    }

    /// Starts watching a pid learned later (an exec'd process's final pid).
    func watch(_ pid: pid_t) {
        monitor.locked {
            if let index = recentUnwatched.firstIndex(where: { $0.pid == pid }) {
                watched[pid] = .some(recentUnwatched[index].status)
                recentUnwatched.remove(at: index)
            } else if watched[pid] == nil {
                watched[pid] = .some(nil)
            }
            monitor.broadcast()
        }
    }

    func forget(_ pid: pid_t) {
        monitor.locked { _ = watched.removeValue(forKey: pid) }
    }

    /// Called by the reaper for every reaped child.
    func recordExit(pid: pid_t, status: Int32) {
        monitor.locked {
            if watched[pid] != nil {
                watched[pid] = .some(status)
            } else {
                recentUnwatched.append((pid, status))
                if recentUnwatched.count > 256 { recentUnwatched.removeFirst(recentUnwatched.count - 256) }
            }
            monitor.broadcast()
        }
    }

    /// The raw wait status once the process has exited, nil while it runs.
    func exitStatus(_ pid: pid_t) -> Int32? {
        monitor.locked { watched[pid] ?? nil }
    }

    /// Blocks until the process has exited; returns its raw wait status.
    func waitForExit(_ pid: pid_t) -> Int32 {
        monitor.locked {
            while true {
                if let entry = watched[pid], let status = entry { return status }
                if watched[pid] == nil {
                    // Not watched (never spawned by us): nothing will ever be recorded.
                    return 0
                }
                monitor.wait()
            }
        }
    }

    /// Blocks until the process exits or `milliseconds` pass; nil on timeout.
    func waitForExit(_ pid: pid_t, milliseconds: Int) -> Int32? {
        monitor.locked {
            var remaining = milliseconds
            while remaining > 0 {
                if let entry = watched[pid], let status = entry { return status }
                let step = min(remaining, 100)
                _ = monitor.wait(milliseconds: step)
                remaining -= step
            }
            return watched[pid] ?? nil
        }
    }

    /// Used by the reaper to sleep while there are no children at all.
    func waitForChildren(milliseconds: Int) {
        monitor.locked { _ = monitor.wait(milliseconds: milliseconds) }
    }
}

/// The OCI convention for a wait status: the exit code, or 128 + signal number.
func exitCode(fromWaitStatus status: Int32) -> Int32 {
    let signal = status & 0x7f
    if signal == 0 { return (status >> 8) & 0xff }
    return 128 + signal
}
