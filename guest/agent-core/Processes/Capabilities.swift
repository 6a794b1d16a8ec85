/// Linux capability names (as OCI writes them, "CAP_SYS_ADMIN") and their numbers.
enum Capabilities {
    static let names: [String] = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
        "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
        "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
        "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ]

    /// The bit mask of `list`; unknown names are INVALID_ARGUMENT. Capabilities the
    /// running kernel does not know (above `lastCap`) are dropped, as runc does.
    static func mask(_ list: [String]?, lastCap: Int) throws(AgentError) -> UInt64 {
        var mask: UInt64 = 0
        for name in list ?? [] {
            guard let number = names.firstIndex(of: name.uppercased()) else {
                throw .invalid("unknown capability \(name)")
            }
            if number <= lastCap { mask |= 1 << UInt64(number) }
        }
        return mask
    }

    /// /proc/sys/kernel/cap_last_cap, or the newest this table knows.
    static func lastCap() -> Int {
        if let text = readSmallFile("/proc/sys/kernel/cap_last_cap"),
           let value = Int(text.trimmingWhitespace()) {
            return value
        }
        return names.count - 1
    }
}
