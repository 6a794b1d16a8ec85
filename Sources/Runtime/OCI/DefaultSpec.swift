import OCI

/// The `config.json` that `kata-runtime spec` writes: runc's default (a terminal `sh` as
/// root in a read-only `rootfs`, the usual mounts, namespaces and masked paths).
public enum DefaultSpec {
    public static func make() -> Spec {
        let capabilities = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        var process = Spec.Process(.init(terminal: true, args: ["sh"],
                                         env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]))
        process.capabilities = Spec.Capabilities(.init(bounding: capabilities, effective: capabilities, inheritable: nil,
                                                       permitted: capabilities, ambient: nil))
        process.rlimits = [Spec.Rlimit(.init(type: "RLIMIT_NOFILE", hard: 1024, soft: 1024))]
        process.noNewPrivileges = true
        var spec = Spec(.init(process: process, root: Spec.Root(.init(path: "rootfs", readonly: true))))
        spec.hostname = "kata"
        spec.mounts = [
            mount("/proc", "proc", "proc", nil),
            mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            mount("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
            mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
            mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
            mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
            mount("/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]),
        ]
        var linux = Spec.Linux(.init())
        linux.namespaces = ["pid", "network", "ipc", "uts", "mount", "cgroup"].map { Spec.Namespace(.init(type: $0)) }
        linux.maskedPaths = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                             "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"]
        linux.readonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        spec.linux = linux
        return spec
    }

    private static func mount(_ destination: String, _ type: String, _ source: String, _ options: [String]?) -> Spec.Mount {
        Spec.Mount(.init(destination: destination, type: type, source: source, options: options))
    }
}
