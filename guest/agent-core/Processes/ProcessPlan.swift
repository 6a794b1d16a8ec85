#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import OCI

/// A container process fully resolved from the OCI "process" object: what the C child
/// path needs, checked (no NUL bytes, known capability and rlimit names, args present).
struct ProcessPlan {
    static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    var argv: [String]
    var env: [String]
    var cwd: String
    var searchPath: String
    var uid: UInt32
    var gid: UInt32
    var groups: [UInt32]
    var rlimits: [(resource: Int32, soft: UInt64, hard: UInt64)]
    var capabilities: (bounding: UInt64, effective: UInt64, permitted: UInt64, inheritable: UInt64, ambient: UInt64)?
    var capLast: Int
    var noNewPrivileges: Bool
    var oomScoreAdj: Int?
    var terminal: Bool
    var consoleSize: (rows: UInt32, columns: UInt32)?

    init(_ process: Spec.Process) throws(AgentError) {
        guard let args = process.args, !args.isEmpty, !args[0].isEmpty else {
            throw .invalid("process.args must name a program")
        }
        argv = args
        env = process.env ?? []
        cwd = process.cwd
        guard cwd.hasPrefix("/") else { throw .invalid("process.cwd must be absolute: \(cwd)") }
        searchPath = env.last(where: { $0.hasPrefix("PATH=") }).map { String($0.dropFirst(5)) } ?? ProcessPlan.defaultPath
        uid = process.user.uid
        gid = process.user.gid
        groups = process.user.additionalGids ?? []
        guard groups.count <= 65536 else { throw .invalid("too many additional gids") }
        rlimits = []
        for limit in process.rlimits ?? [] {
            guard let resource = ProcessPlan.rlimitNames[limit.type] else { throw .invalid("unknown rlimit \(limit.type)") }
            guard limit.soft <= limit.hard else { throw .invalid("rlimit \(limit.type): soft above hard") }
            rlimits.append((resource, limit.soft, limit.hard))
        }
        capLast = Capabilities.lastCap()
        if let caps = process.capabilities {
            capabilities = (
                try Capabilities.mask(caps.bounding, lastCap: capLast),
                try Capabilities.mask(caps.effective, lastCap: capLast),
                try Capabilities.mask(caps.permitted, lastCap: capLast),
                try Capabilities.mask(caps.inheritable, lastCap: capLast),
                try Capabilities.mask(caps.ambient, lastCap: capLast)
            )
        }
        noNewPrivileges = process.noNewPrivileges ?? false
        oomScoreAdj = process.oomScoreAdj
        if let adj = oomScoreAdj, adj < -1000 || adj > 1000 { throw .invalid("oomScoreAdj out of range: \(adj)") }
        terminal = process.terminal ?? false
        consoleSize = process.consoleSize.map { ($0.height, $0.width) }
        for text in argv + env + [cwd] where text.utf8.contains(0) {
            throw .invalid("process strings must not contain NUL bytes")
        }
    }

    static let rlimitNames: [String: Int32] = [
        "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
        "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
        "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
        "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
    ]
}
