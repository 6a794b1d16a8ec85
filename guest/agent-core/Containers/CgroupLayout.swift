#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where the agent finds each resource controller it limits (memory, cpu, pids): in the
/// guest, all on the cgroup2 hierarchy the agent mounted at /sys/fs/cgroup; on a host
/// with hybrid cgroups (cgroup2 at /sys/fs/cgroup/unified without those controllers, each
/// bound to its v1 hierarchy), on the v1 hierarchies. Containers get cgroups below the
/// agent's own cgroup in each hierarchy.
struct CgroupLayout {
    enum Controller: String, CaseIterable {
        case memory, cpu, pids
    }

    struct Placement: Equatable {
        /// The agent's own cgroup directory in that hierarchy.
        var directory: String
        var isV2: Bool
    }

    var placements: [Controller: Placement] = [:]
    /// The cgroup2 directory of the agent, when a cgroup2 hierarchy is mounted.
    var unifiedDirectory: String?

    /// `membership`: /proc/self/cgroup; `root`: where the cgroup filesystems are mounted.
    static func detect(membership: String = readSmallFile("/proc/self/cgroup") ?? "", root: String = "/sys/fs/cgroup") -> CgroupLayout {
        var layout = CgroupLayout()
        var v2Path = "/"
        var v1Paths: [String: String] = [:]
        for line in membership.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            if fields[0] == "0" && fields[1].isEmpty {
                v2Path = String(fields[2])
            } else {
                for controller in fields[1].split(separator: ",") { v1Paths[String(controller)] = String(fields[2]) }
            }
        }
        let unifiedMount: String?
        if access(root + "/cgroup.controllers", F_OK) == 0 {
            unifiedMount = root
        } else if access(root + "/unified/cgroup.controllers", F_OK) == 0 {
            unifiedMount = root + "/unified"
        } else {
            unifiedMount = nil
        }
        if let unifiedMount {
            let directory = join(unifiedMount, v2Path)
            layout.unifiedDirectory = directory
            let available = (readSmallFile(join(directory, "cgroup.controllers")) ?? "").split(separator: " ").map {
                $0.trimmingCharacters()
            }
            for controller in Controller.allCases where available.contains(controller.rawValue) {
                layout.placements[controller] = Placement(directory: directory, isV2: true)
            }
        }
        for controller in Controller.allCases where layout.placements[controller] == nil {
            guard let path = v1Paths[controller.rawValue] else { continue }
            for mount in ["\(root)/\(controller.rawValue)", "\(root)/cpu,cpuacct"] {
                if access(join(mount, "cgroup.procs"), F_OK) == 0 {
                    layout.placements[controller] = Placement(directory: join(mount, path), isV2: false)
                    break
                }
            }
        }
        return layout
    }

    var summary: String {
        Controller.allCases.map { controller in
            guard let placement = placements[controller] else { return "\(controller.rawValue): none" }
            return "\(controller.rawValue): \(placement.isV2 ? "v2" : "v1") \(placement.directory)"
        }.joined(separator: ", ")
    }

    static func join(_ base: String, _ path: String) -> String {
        if path == "/" || path.isEmpty { return base }
        return base + (path.hasPrefix("/") ? path : "/" + path)
    }
}

extension Substring {
    func trimmingCharacters() -> String { String(self).trimmingWhitespace() }
}
