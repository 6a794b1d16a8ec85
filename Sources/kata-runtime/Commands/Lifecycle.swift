import ArgumentParser
import Foundation
import Glibc
import HostInput
import Runtime
import OCI
import LinuxSupport

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a container: boot its sandbox VM and prepare the process.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short, .long], help: "Path to the bundle directory.") var bundle: String = "."
    @Option(name: .customLong("console-socket"), help: "Unix socket that receives the pty master (terminal containers).") var consoleSocket: String?
    @Option(name: .customLong("pid-file"), help: "File to write the container process's pid to.") var pidFile: String?
    @Flag(name: .customLong("no-pivot"), help: "Accepted for compatibility.") var noPivot = false
    @Flag(name: .customLong("no-new-keyring"), help: "Accepted for compatibility.") var noNewKeyring = false
    @Option(name: .customLong("preserve-fds"), help: "Accepted for compatibility (extra fds do not reach a VM).") var preserveFds: Int = 0
    @Argument(help: "Container id.") var id: String

    func run() throws {
        let invocation = Invocation(global)
        try invocation.perform {
            let lifecycle = ContainerLifecycle(context: try invocation.context())
            try lifecycle.create(id: id, options: .init(bundle: bundle, pidFile: pidFile, consoleSocket: consoleSocket))
        }
    }
}

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start the process of a created container.")
    @OptionGroup var global: GlobalOptions
    @Argument var id: String

    func run() throws {
        let invocation = Invocation(global)
        try invocation.perform { try ContainerLifecycle(context: try invocation.context()).start(id: id) }
    }
}

struct State: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the container's OCI state as JSON.")
    @OptionGroup var global: GlobalOptions
    @Argument var id: String

    func run() throws {
        let invocation = Invocation(global)
        try invocation.perform {
            let record = try StateStore(root: global.root).load(id)
            printJSON(try StateStore.ociState(record).jsonData(pretty: true))
        }
    }
}

struct Kill: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a signal (default SIGTERM) to the container's init process.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short, .long], help: "Signal every process of the container.") var all = false
    @Argument var id: String
    @Argument var signal: String = "SIGTERM"

    func run() throws {
        let invocation = Invocation(global)
        try invocation.perform {
            let number = try SignalName.parse(signal)
            try ContainerLifecycle(context: try invocation.context()).kill(id: id, signal: number, all: all)
        }
    }
}

struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete the container: stop its VM and remove every trace.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short, .long], help: "Kill the container first if it is running.") var force = false
    @Argument var id: String

    func run() throws {
        let invocation = Invocation(global)
        try invocation.perform { try ContainerLifecycle(context: try invocation.context()).delete(id: id, force: force) }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create and start a container; wait for it unless detached.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short, .long]) var bundle: String = "."
    @Option(name: .customLong("console-socket")) var consoleSocket: String?
    @Option(name: .customLong("pid-file")) var pidFile: String?
    @Flag(name: [.short, .long]) var detach = false
    @Flag(name: .customLong("keep"), help: "Do not delete the container after it exits.") var keep = false
    @Flag(name: .customLong("no-subreaper")) var noSubreaper = false
    @Flag(name: .customLong("no-pivot")) var noPivot = false
    @Flag(name: .customLong("no-new-keyring")) var noNewKeyring = false
    @Option(name: .customLong("preserve-fds")) var preserveFds: Int = 0
    @Argument var id: String

    func run() throws {
        let invocation = Invocation(global)
        var status: Int32 = 0
        try invocation.perform {
            if consoleSocket != nil && !detach {
                throw RuntimeError("cannot use console socket if runc will not detach or allocate tty")
            }
            let lifecycle = ContainerLifecycle(context: try invocation.context())
            var options = ContainerLifecycle.CreateOptions(bundle: bundle, pidFile: pidFile, consoleSocket: consoleSocket)
            options.useCallerTerminal = !detach
            let pid = try lifecycle.create(id: id, options: options)
            do { try lifecycle.start(id: id) } catch {
                try? lifecycle.delete(id: id, force: true)
                throw error
            }
            guard !detach else { return }
            status = ProcessWaiter.waitForwardingSignals(pid: pid) { signal in
                try? lifecycle.kill(id: id, signal: signal, all: false)
            }
            if !keep { try? lifecycle.delete(id: id, force: true) }
        }
        if status != 0 { throw ExitCode(status) }
    }
}

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a new process inside the container.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("console-socket")) var consoleSocket: String?
    @Option(name: .customLong("cwd")) var cwd: String?
    @Option(name: [.short, .customLong("env")]) var env: [String] = []
    @Flag(name: [.short, .customLong("tty")]) var tty = false
    @Option(name: [.short, .customLong("user")]) var user: String?
    @Option(name: [.short, .customLong("additional-gids")]) var additionalGids: [UInt32] = []
    @Option(name: [.short, .customLong("process")], help: "JSON file with the OCI process object.") var process: String?
    @Flag(name: [.short, .long]) var detach = false
    @Option(name: .customLong("pid-file")) var pidFile: String?
    @Option(name: .customLong("process-label")) var processLabel: String?
    @Option(name: .customLong("apparmor")) var apparmor: String?
    @Flag(name: .customLong("no-new-privs")) var noNewPrivs = false
    @Option(name: [.short, .customLong("cap")]) var capabilities: [String] = []
    @Option(name: .customLong("preserve-fds")) var preserveFds: Int = 0
    @Flag(name: .customLong("ignore-paused")) var ignorePaused = false
    @Option(name: .customLong("cgroup")) var cgroup: [String] = []
    @Argument var id: String
    @Argument(parsing: .captureForPassthrough) var command: [String] = []

    func run() throws {
        let invocation = Invocation(global)
        var status: Int32 = 0
        try invocation.perform {
            let context = try invocation.context()
            _ = try context.store.load(id)  // runc checks the container before the process
            let (process, terminal) = try execProcess(store: context.store)
            let lifecycle = ContainerLifecycle(context: context)
            var options = ContainerLifecycle.ExecOptions(process: process, terminal: terminal, detach: detach,
                                                         pidFile: pidFile, consoleSocket: consoleSocket)
            options.stdio = (0, 1, 2)
            let shim = try lifecycle.exec(id: id, options: options)
            guard !detach else { return }
            status = ProcessWaiter.waitForwardingSignals(pid: shim.pid) { _ in }
        }
        if status != 0 { throw ExitCode(status) }
    }

    /// The process object: the --process file as given, or the container's process with
    /// the command line's args and overrides.
    func execProcess(store: StateStore) throws -> (Spec.Process, Bool) {
        if let process {
            let data: Data
            do { data = Data(try CheckedFile.read(process, role: "--process file", limit: CheckedFile.documentLimit)) } catch {
                throw RuntimeError("\(error)")
            }
            let decoded: Spec.Process
            do { decoded = try OCIBundle.decode(Spec.Process.self, from: data, file: process) } catch {
                throw RuntimeError("\(process): not an OCI process object: \(error)")
            }
            guard let args = decoded.args, !args.isEmpty else { throw RuntimeError("\(process): args must not be empty") }
            return (decoded, decoded.terminal ?? false)
        }
        let arguments = command.first == "--" ? Array(command.dropFirst()) : command
        guard !arguments.isEmpty else { throw RuntimeError("exec: a command is required (or --process)") }
        let record = try store.load(id)
        var base = Spec.Process(.init(args: arguments))
        if let data = FileManager.default.contents(atPath: record.configCopyPath),
           let spec = try? OCIBundle.decode(data, file: record.configCopyPath), let process = spec.process {
            base = process
            base.args = arguments
            base.terminal = false
            base.consoleSize = nil
        }
        base.terminal = tty
        base.env = (base.env ?? []) + env
        if let cwd { base.cwd = cwd }
        if let user {
            let parts = user.split(separator: ":")
            guard let uid = parts.first.flatMap({ UInt32($0) }) else { throw RuntimeError("exec --user \(user): use UID[:GID]") }
            base.user = Spec.User(.init(uid: uid, gid: parts.count > 1 ? UInt32(parts[1]) ?? 0 : 0))
        }
        if !additionalGids.isEmpty { base.user.additionalGids = additionalGids }
        if noNewPrivs { base.noNewPrivileges = true }
        return (base, tty)
    }
}

struct Ps: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the container's processes.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short, .long], help: "table or json.") var format: String = "table"
    @Argument var id: String
    @Argument(parsing: .captureForPassthrough) var psArguments: [String] = []

    func run() throws {
        let invocation = Invocation(global)
        try invocation.perform {
            guard format == "table" || format == "json" else { throw RuntimeError("invalid format option") }
            let data = try ContainerLifecycle(context: try invocation.context()).processes(id: id, format: format)
            _ = try? FileDescriptors.writeAll(STDOUT_FILENO, Array(data))
            if format == "json", data.last != UInt8(ascii: "\n") { printLine("") }
        }
    }
}

struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Freeze every process of the container (cgroup freezer in the guest).")
    @OptionGroup var global: GlobalOptions
    @Argument var id: String
    func run() throws {
        let invocation = Invocation(global)
        try invocation.perform { try ContainerLifecycle(context: try invocation.context()).pause(id: id) }
    }
}

struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Thaw the processes of a paused container.")
    @OptionGroup var global: GlobalOptions
    @Argument var id: String
    func run() throws {
        let invocation = Invocation(global)
        try invocation.perform { try ContainerLifecycle(context: try invocation.context()).resume(id: id) }
    }
}

/// Waits for a child (the process shim), forwarding SIGINT/SIGTERM/SIGHUP to the
/// container as runc does for `run` in the foreground; returns its exit status.
enum ProcessWaiter {
    static func waitForwardingSignals(pid: Int32, forward: @escaping (Int32) -> Void) -> Int32 {
        // Without the thread the signals stay blocked and the container runs on: say so.
        do {
            try SignalWaiter.block([SIGINT, SIGTERM, SIGHUP, SIGQUIT]).handOff(to: forward)
        } catch {
            _ = try? FileDescriptors.writeAll(STDERR_FILENO, Array("kata-runtime: warning: signals are not forwarded to the container: \(error)\n".utf8))
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return 255 }
        }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}

struct Update: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Change the container's cgroup limits (memory, cpu, pids) inside its VM.",
        discussion: "The VM keeps the memory and vCPUs it booted with; the limits apply to the container's processes inside it.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short, .customLong("resources")], help: "JSON file with the OCI linux.resources object, '-' for stdin.")
    var resourcesFile: String?
    @Option(name: .customLong("memory"), help: "Memory limit in bytes (k, m, g suffixes), -1 for none.") var memory: String?
    @Option(name: .customLong("memory-swap"), help: "Memory plus swap limit, -1 for none.") var memorySwap: String?
    @Option(name: .customLong("cpu-period")) var cpuPeriod: UInt64?
    @Option(name: .customLong("cpu-quota")) var cpuQuota: Int64?
    @Option(name: .customLong("cpu-share")) var cpuShare: UInt64?
    @Option(name: .customLong("pids-limit")) var pidsLimit: Int64?
    @Argument var id: String

    func run() throws {
        let invocation = Invocation(global)
        try invocation.perform {
            var resources = Spec.Resources(.init())
            if let resourcesFile {
                let data: Data
                do {
                    data = resourcesFile == "-" ? try Self.readStandardInput(limit: CheckedFile.documentLimit)
                        : Data(try CheckedFile.read(resourcesFile, role: "--resources file", limit: CheckedFile.documentLimit))
                } catch { throw RuntimeError("\(error)") }
                do {
                    resources = try OCIBundle.decode(Spec.Resources.self, from: data, file: resourcesFile)
                } catch {
                    throw RuntimeError("--resources \(resourcesFile): not an OCI linux.resources object: \(error)")
                }
            }
            if memory != nil || memorySwap != nil {
                var value = resources.memory ?? Spec.Memory(.init(limit: nil))
                if let memory { value.limit = try ByteSize.parse(memory, flag: "--memory") }
                if let memorySwap { value.swap = try ByteSize.parse(memorySwap, flag: "--memory-swap") }
                resources.memory = value
            }
            if cpuPeriod != nil || cpuQuota != nil || cpuShare != nil {
                var value = resources.cpu ?? Spec.CPU(.init(quota: nil, period: nil))
                if let cpuPeriod { value.period = cpuPeriod }
                if let cpuQuota { value.quota = cpuQuota }
                if let cpuShare { value.shares = cpuShare }
                resources.cpu = value
            }
            if let pidsLimit { resources.pids = Spec.Pids(.init(limit: pidsLimit)) }
            try ContainerLifecycle(context: try invocation.context()).update(id: id, resources: resources)
        }
    }

    /// `--resources -`: stdin, refused past `limit` bytes instead of read without end.
    static func readStandardInput(limit: Int) throws -> Data {
        let data = FileHandle.standardInput.readData(ofLength: limit + 1)
        guard data.count <= limit else { throw RuntimeError("--resources -: more than the \(limit) bytes accepted on stdin") }
        return data
    }
}

/// runc's memory sizes: bytes, or a number with k, m, g or t (optionally followed by b),
/// any case, in powers of 1024; -1 for unlimited.
enum ByteSize {
    static func parse(_ text: String, flag: String) throws -> Int64 {
        let lower = text.lowercased().trimmingCharacters(in: .whitespaces)
        if lower == "-1" { return -1 }
        var digits = lower
        if digits.hasSuffix("b") { digits.removeLast() }
        var shift: Int64 = 0
        if let unit = digits.last, let power = ["k": 10, "m": 20, "g": 30, "t": 40][String(unit)] {
            shift = Int64(power)
            digits.removeLast()
        }
        guard let number = Int64(digits), number >= 0 else {
            throw RuntimeError("\(flag): invalid size \(text)")
        }
        let (value, overflow) = number.multipliedReportingOverflow(by: Int64(1) << shift)
        guard !overflow else { throw RuntimeError("\(flag): \(text) is too large") }
        return value
    }
}
