/// A `linux.sysctl` entry written through /proc/sys by the container's first process, in
/// its new namespaces, before it enters its rootfs. As runc, only sysctls that belong to
/// the container's own namespaces: IPC (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*),
/// UTS (kernel.hostname, kernel.domainname) and network (net.*). The network is the VM's
/// own, so net.* needs an agent that is the VM's init, or, beside a host test, a network
/// namespace of the container's own.
struct Sysctl: Equatable {
    var path: String
    var value: String

    static let ipc: Set<String> = ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
                                   "kernel.shmmni", "kernel.shm_rmid_forced"]
    static let uts: Set<String> = ["kernel.hostname", "kernel.domainname"]
    static let maxCount = 256, maxValueBytes = 4096

    /// `namespaces`: the container's (new or joined) namespace types; `ownsNetwork`: the
    /// agent is the VM's init.
    static func plan(_ sysctls: [String: String], namespaces: Set<String>, ownsNetwork: Bool) throws(AgentError) -> [Sysctl] {
        guard sysctls.count <= maxCount else { throw .invalid("\(sysctls.count) sysctls: at most \(maxCount)") }
        return try sysctls.keys.sorted().map { key throws(AgentError) in
            let value = sysctls[key] ?? ""
            let components = key.split(separator: ".", omittingEmptySubsequences: false)
            guard !components.isEmpty, components.allSatisfy({ part in
                !part.isEmpty && part != ".." && part.utf8.allSatisfy { byte in
                    (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || byte == 0x5f || byte == 0x2d || (byte >= 0x41 && byte <= 0x5a)
                }
            }) else { throw .invalid("sysctl '\(key)' is not a sysctl name") }
            guard !value.utf8.contains(0), value.utf8.count <= maxValueBytes else { throw .invalid("sysctl \(key): a bad value") }
            if key.hasPrefix("net.") {
                guard ownsNetwork else {
                    throw .invalid("sysctl \(key): the network sysctls need the agent of a VM or a network namespace of the container's own")
                }
            } else {
                let needed = ipc.contains(key) || key.hasPrefix("fs.mqueue.") ? "ipc" : uts.contains(key) ? "uts" : nil
                guard let needed else {
                    throw .invalid("sysctl \(key) is not in a container's namespaces (only kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, kernel.hostname, kernel.domainname, net.*)")
                }
                guard namespaces.contains(needed) else { throw .invalid("sysctl \(key) needs the container's own \(needed) namespace") }
            }
            return Sysctl(path: "/proc/sys/" + components.joined(separator: "/"), value: value)
        }
    }
}
