#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import AgentProtocol
import OCI

/// The cgroups of one container (one directory per hierarchy in use): created with the
/// spec's limits before the container's first process, which joins them (and so does
/// every exec'd process) through their cgroup.procs; removed with the container.
final class ContainerCgroup {
    private(set) var directories: [String] = []
    private var controllerDirectory: [CgroupLayout.Controller: (path: String, isV2: Bool)] = [:]
    /// The container's cgroup2 directory, if cgroup2 is mounted: where it is frozen.
    private(set) var unifiedDirectory: String?

    init(layout: CgroupLayout, parentName: String, name: String, resources: Spec.Resources?) throws(AgentError) {
        var created: [String: Bool] = [:]
        var unique: [(String, Bool)] = []
        for controller in CgroupLayout.Controller.allCases {
            guard let placement = layout.placements[controller] else { continue }
            let parent = placement.directory + "/" + parentName
            let path = parent + "/" + name
            if created[path] == nil {
                created[path] = placement.isV2
                unique.append((path, placement.isV2))
                try makeDirectories(parent)
                if placement.isV2 {
                    // Delegate the controllers to the container level.
                    for c in CgroupLayout.Controller.allCases where layout.placements[c]?.isV2 == true {
                        try? writeSmallFile(parent + "/cgroup.subtree_control", "+\(c.rawValue)")
                    }
                }
                if mkdir(path, 0o755) != 0 {
                    if errno == EEXIST { throw .exists("cgroup \(path) exists") }
                    throw .errno("mkdir \(path)")
                }
                directories.append(path)
            }
            controllerDirectory[controller] = (path, placement.isV2)
        }
        if !unique.contains(where: { $0.1 }), let unified = layout.unifiedDirectory {
            // No controller on cgroup2 (a hybrid host): still group the processes there,
            // for cgroup.kill and cgroup.freeze.
            let parent = unified + "/" + parentName
            try makeDirectories(parent)
            let path = parent + "/" + name
            if mkdir(path, 0o755) != 0 && errno != EEXIST { throw .errno("mkdir \(path)") }
            directories.append(path)
            unifiedDirectory = path
        } else {
            unifiedDirectory = unique.first(where: { $0.1 })?.0
        }
        do {
            try apply(resources)
        } catch {
            destroy()
            throw error
        }
    }

    /// The cgroup.procs files a new process writes itself into (one per hierarchy).
    var procsFiles: [String] { directories.map { $0 + "/cgroup.procs" } }

    /// Writes the limits `resources` sets (the others stay): at create, and for UpdateContainer.
    func apply(_ resources: Spec.Resources?) throws(AgentError) {
        guard let resources else { return }
        if let memory = resources.memory, let limit = memory.limit {
            guard let (path, isV2) = controllerDirectory[.memory] else {
                throw .precondition("a memory limit was asked for but no memory controller is available")
            }
            if isV2 {
                try writeSmallFile(path + "/memory.max", limit < 0 ? "max" : String(limit))
                if let swap = memory.swap, access(path + "/memory.swap.max", F_OK) == 0 {
                    // OCI's swap is memory + swap; cgroup2's swap.max is the swap alone.
                    let swapOnly = swap < 0 || limit < 0 ? "max" : String(max(0, swap.subtractingReportingOverflow(limit).partialValue))
                    try writeSmallFile(path + "/memory.swap.max", swapOnly)
                }
            } else {
                try writeSmallFile(path + "/memory.limit_in_bytes", String(limit))
                if access(path + "/memory.memsw.limit_in_bytes", F_OK) == 0 {
                    try writeSmallFile(path + "/memory.memsw.limit_in_bytes", String(memory.swap ?? limit))
                }
            }
        }
        if let cpu = resources.cpu {
            guard let (path, isV2) = controllerDirectory[.cpu] else {
                throw .precondition("a cpu limit was asked for but no cpu controller is available")
            }
            let period = cpu.period ?? 100_000
            if isV2 {
                if cpu.quota != nil || cpu.period != nil {
                    let quota = cpu.quota.map { $0 < 0 ? "max" : String($0) } ?? "max"
                    try writeSmallFile(path + "/cpu.max", "\(quota) \(period)")
                }
                if let shares = cpu.shares, shares > 0 {
                    // cgroup v1 shares (2...262144) mapped onto cgroup2 weight (1...10000), as runc does.
                    let clamped = min(max(shares, 2), 262_144)
                    let weight = 1 + ((clamped - 2) * 9999) / 262_142
                    try writeSmallFile(path + "/cpu.weight", String(weight))
                }
            } else {
                if cpu.quota != nil || cpu.period != nil {
                    try writeSmallFile(path + "/cpu.cfs_period_us", String(period))
                    try writeSmallFile(path + "/cpu.cfs_quota_us", String(cpu.quota ?? -1))
                }
                if let shares = cpu.shares, shares > 0 {
                    try writeSmallFile(path + "/cpu.shares", String(shares))
                }
            }
        }
        if let pids = resources.pids {
            guard let (path, _) = controllerDirectory[.pids] else {
                throw .precondition("a pids limit was asked for but no pids controller is available")
            }
            try writeSmallFile(path + "/pids.max", pids.limit <= 0 ? "max" : String(pids.limit))
        }
    }

    /// The processes in the container's cgroup (the first hierarchy's view).
    func pids() -> [pid_t] {
        guard let first = directories.first, let text = readSmallFile(first + "/cgroup.procs", limit: 1 << 20) else { return [] }
        return text.split(separator: "\n").compactMap { pid_t($0) }
    }

    /// SIGKILLs everything still in the cgroup (cgroup.kill where cgroup2 has it).
    func killAll() {
        for path in directories where access(path + "/cgroup.kill", F_OK) == 0 {
            try? writeSmallFile(path + "/cgroup.kill", "1")
            return
        }
        for pid in pids() { kill(pid, SIGKILL) }
    }

    /// Freezes or thaws every process of the container (cgroup2's cgroup.freeze) and
    /// waits, up to `timeoutMilliseconds`, for cgroup.events to report it done.
    func setFrozen(_ frozen: Bool, timeoutMilliseconds: Int = 10_000) throws(AgentError) {
        guard let path = unifiedDirectory, access(path + "/cgroup.freeze", F_OK) == 0 else {
            throw .precondition("no cgroup2 freezer for this container (cgroup.freeze needs Linux 5.2 and cgroup2)")
        }
        try writeSmallFile(path + "/cgroup.freeze", frozen ? "1" : "0")
        let wanted = frozen ? "frozen 1" : "frozen 0"
        var waited = 0
        while waited < timeoutMilliseconds {
            let events = readSmallFile(path + "/cgroup.events") ?? ""
            if events.split(separator: "\n").contains(where: { $0 == wanted }) { return }
            usleep(5_000)
            waited += 5
        }
        throw .system(errno: ETIMEDOUT, "\(frozen ? "freeze" : "thaw") \(path): cgroup.events never said \(wanted)")
    }

    /// Removes the directories (empty cgroups only; retried briefly while the killed
    /// processes are being reaped).
    func destroy() {
        for path in directories.reversed() {
            for _ in 0..<100 {
                if rmdir(path) == 0 || errno == ENOENT { break }
                usleep(10_000)
            }
        }
        directories.removeAll()
    }

    func stats() -> Grpc_CgroupStats {
        var stats = Grpc_CgroupStats()
        if let (path, isV2) = controllerDirectory[.memory] {
            var memory = Grpc_MemoryStats()
            if isV2 {
                memory.usage = number(path + "/memory.current")
                memory.limit = number(path + "/memory.max")
                memory.maxUsage = number(path + "/memory.peak")
            } else {
                memory.usage = number(path + "/memory.usage_in_bytes")
                memory.limit = number(path + "/memory.limit_in_bytes")
                memory.maxUsage = number(path + "/memory.max_usage_in_bytes")
            }
            stats.memoryStats = memory
        }
        if let (path, isV2) = controllerDirectory[.cpu] ?? directories.first.map({ ($0, true) }) {
            var cpu = Grpc_CpuUsage()
            if isV2, let text = readSmallFile(path + "/cpu.stat") {
                for line in text.split(separator: "\n") {
                    let parts = line.split(separator: " ")
                    guard parts.count == 2, let value = UInt64(parts[1]) else { continue }
                    switch parts[0] {
                    case "usage_usec": cpu.totalUsage = value * 1000
                    case "user_usec": cpu.usageInUsermode = value * 1000
                    case "system_usec": cpu.usageInKernelmode = value * 1000
                    default: break
                    }
                }
            } else if !isV2 {
                let acct = path.replacingFirst("/sys/fs/cgroup/cpu/", with: "/sys/fs/cgroup/cpuacct/")
                cpu.totalUsage = number(acct + "/cpuacct.usage")
            }
            stats.cpuUsage = cpu
        }
        if let (path, _) = controllerDirectory[.pids] {
            var pids = Grpc_PidsStats()
            pids.current = number(path + "/pids.current")
            pids.limit = number(path + "/pids.max")
            stats.pidsStats = pids
        }
        return stats
    }

    /// A cgroup number file; "max" (no limit) reads as UInt64.max, missing as 0.
    private func number(_ path: String) -> UInt64 {
        guard let text = readSmallFile(path)?.trimmingWhitespace() else { return 0 }
        if text == "max" { return UInt64.max }
        return UInt64(text) ?? 0
    }
}

extension String {
    func replacingFirst(_ prefix: String, with replacement: String) -> String {
        guard hasPrefix(prefix) else { return self }
        return replacement + dropFirst(prefix.count)
    }
}
