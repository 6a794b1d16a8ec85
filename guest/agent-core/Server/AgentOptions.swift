/// The agent's command line: `kata-agent [--listen unix:PATH|vsock:PORT] [--verbose]`.
/// As PID 1 (no arguments from the kernel) it listens on vsock port 1024; the kernel
/// command line's `agent.verbose` turns on debug lines.
struct AgentOptions {
    var listen: ListenAddress = .vsock(port: ListenAddress.defaultVsockPort)
    var listenGiven = false
    var verbose = false
    /// Directory for container state and files copied in by CopyFile.
    var stateDirectory = "/run/kata-containers"

    /// The agent does the PID 1 duties (mounts, lo, power off) when it is PID 1 and was
    /// not told where to listen: that is how the kernel starts /init. A host test runs
    /// it as PID 1 of a fresh PID namespace with --listen, and gets none of that.
    var runsAsInit: Bool { GuestInit.isPID1 && !listenGiven }

    init(arguments: [String]) throws(AgentError) {
        var index = 1
        while index < arguments.count {
            let argument = arguments[index]
            switch argument {
            case "--listen":
                guard index + 1 < arguments.count else { throw .invalid("--listen needs an address") }
                listen = try ListenAddress(parsing: arguments[index + 1])
                listenGiven = true
                index += 1
            case "--state-dir":
                guard index + 1 < arguments.count, arguments[index + 1].hasPrefix("/") else {
                    throw .invalid("--state-dir needs an absolute path")
                }
                stateDirectory = arguments[index + 1]
                index += 1
            case "--verbose", "agent.verbose":
                verbose = true
            case "--help", "-h":
                throw .invalid("usage: kata-agent [--listen unix:PATH|vsock:PORT] [--state-dir DIR] [--verbose]")
            default:
                // The kernel passes unknown cmdline words to init as arguments: ignore them
                // as PID 1, reject them otherwise.
                if !GuestInit.isPID1 { throw .invalid("unknown argument \(argument)") }
            }
            index += 1
        }
    }
}
