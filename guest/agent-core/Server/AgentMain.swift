#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CAgentSpawn

/// The agent's life: PID 1 of the sandbox VM (or a plain process in host tests) serving the
/// agent API over ttrpc until the VM powers off. The executable only calls `run`.
public enum AgentMain {
    public static func run(arguments: [String]) -> Never {
        let options: AgentOptions
        do {
            options = try AgentOptions(arguments: arguments)
        } catch {
            AgentLog.write("kata-agent: \(error)\n")
            exit(2)
        }
        let log = AgentLog(verbose: options.verbose)
        // Writes to a closed stdin pipe must fail with EPIPE, not kill the agent (children
        // get SIG_DFL back before execve).
        signal(SIGPIPE, SIG_IGN)

        GuestInit.active = options.runsAsInit
        if options.runsAsInit {
            GuestInit.setUp(log: log)
        }

        let processes = ProcessTable()
        Reaper.start(table: processes, log: log)

        // Host tests run several agents beside each other: each gets its own cgroup parent.
        let cgroupParent = options.runsAsInit ? "kata-containers" : "kata-agent-\(randomSuffix())"
        let sandbox = Sandbox(processes: processes, log: log, stateDirectory: options.stateDirectory, cgroupParent: cgroupParent,
                              ownsNetwork: options.runsAsInit)
        var router = RPCRouter()
        HealthService.register(in: &router)
        AgentService(sandbox: sandbox, files: FileCopier(root: options.stateDirectory), runsAsInit: options.runsAsInit)
            .register(in: &router)

        let listener: Int32
        do {
            listener = try options.listen.listen()
        } catch {
            AgentLog.fatal("cannot listen on \(options.listen): \(error)")
        }
        let uptime = options.runsAsInit ? ", uptime \(readSmallFile("/proc/uptime")?.split(separator: " ").first ?? "?") s" : ""
        log.info("listening on \(options.listen) (pid \(getpid())\(uptime))")
        AgentServer(router: router, log: log).serve(listener: listener)
    }

    /// Eight hex digits from the kernel's random pool.
    private static func randomSuffix() -> String {
        let value = agent_random_u32()
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}
