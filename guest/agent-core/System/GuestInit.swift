#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CAgentSpawn

/// The PID 1 duties of the agent in the guest: the pseudo filesystems every container
/// and the agent itself need, the loopback interface, and powering the VM off (the
/// kernel panics if init exits, which would hide why). Zombie reaping is the `Reaper`'s.
enum GuestInit {
    static var isPID1: Bool { getpid() == 1 }
    /// Set once at start: the agent is the VM's init (see `AgentOptions.runsAsInit`).
    nonisolated(unsafe) static var active = false

    /// cgroup v1 controllers are deliberately not mounted: a controller bound to a v1
    /// hierarchy is unavailable to cgroup2, and the agent's limits use cgroup2.
    private static let mounts: [(source: String, target: String, type: String, flags: UInt, data: String?)] = [
        ("proc", "/proc", "proc", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), nil),
        ("sysfs", "/sys", "sysfs", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), nil),
        ("devtmpfs", "/dev", "devtmpfs", UInt(MS_NOSUID), "mode=0755"),
        ("devpts", "/dev/pts", "devpts", UInt(MS_NOSUID | MS_NOEXEC), "newinstance,ptmxmode=0666,mode=0620,gid=5"),
        ("tmpfs", "/dev/shm", "tmpfs", UInt(MS_NOSUID | MS_NODEV), "mode=1777"),
        ("tmpfs", "/run", "tmpfs", UInt(MS_NOSUID | MS_NODEV), "mode=0755"),
        ("tmpfs", "/tmp", "tmpfs", UInt(MS_NOSUID | MS_NODEV), "mode=1777"),
        ("cgroup2", "/sys/fs/cgroup", "cgroup2", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), nil),
    ]

    static func setUp(log: AgentLog) {
        for m in mounts {
            mkdir(m.target, 0o755)
            let result = m.data.map { data in mount(m.source, m.target, m.type, m.flags, data) }
                ?? mount(m.source, m.target, m.type, m.flags, nil)
            if result != 0 && errno != EBUSY {
                AgentLog.fatal("mount \(m.type) on \(m.target): \(String(cString: strerror(errno)))")
            }
        }
        unlink("/dev/ptmx")
        symlink("pts/ptmx", "/dev/ptmx")
        symlink("/proc/self/fd", "/dev/fd")
        if agent_if_up("lo") != 0 {
            log.error("bringing up lo: \(String(cString: strerror(errno)))")
        }
        enableControllers(log: log)
    }

    /// Delegates memory, cpu and pids to the cgroups the agent creates.
    private static func enableControllers(log: AgentLog) {
        let fd = open("/sys/fs/cgroup/cgroup.subtree_control", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        for controller in ["+memory", "+cpu", "+pids"] {
            let bytes = Array(controller.utf8)
            if write(fd, bytes, bytes.count) < 0 {
                log.error("enabling cgroup controller \(controller): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Powers the VM off (PID 1 only); never returns.
    static func powerOff() -> Never {
        AgentLog.write("kata-agent: powering off\n")
        _ = agent_power_off()
        // reboot(2) only fails without CAP_SYS_BOOT; there is nothing else to do.
        while true { pause() }
    }
}
