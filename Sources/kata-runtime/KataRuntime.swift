import ArgumentParser
import Foundation
import Glibc
import Runtime
import OCI
import LinuxSupport

struct KataRuntime: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "kata-runtime",
        abstract: "An OCI runtime (runc-compatible command line) that runs each container in its own microVM.",
        version: "kata-runtime version \(version)\nspec: \(Spec.version)",
        subcommands: [
            Create.self, Start.self, State.self, Kill.self, Delete.self, Run.self, Exec.self, Ps.self, List.self,
            Features.self, SpecCommand.self, Version.self, Env.self, Check.self, Pause.self, Resume.self, Update.self,
            SandboxMonitorCommand.self, ProcessShimCommand.self,
        ])
}

/// What a command needs from the global flags: the log, the configuration, the store.
struct Invocation {
    let options: GlobalOptions
    let log: RuntimeLog

    init(_ options: GlobalOptions) {
        self.options = options
        self.log = RuntimeLog(options)
    }

    func context() throws -> RuntimeContext {
        let config = try RuntimeConfiguration.load(explicitPath: options.config)
        let log = self.log
        return RuntimeContext(store: StateStore(root: options.root), config: config, executable: RuntimeContext.selfExecutable,
                              globalArguments: options.forwarded, warn: { log.warning($0) }, debug: { log.debug($0) })
    }

    /// runc's error convention: logged (json or text), also on stderr when logging to a
    /// file, exit status 1.
    func fail(_ error: Error) -> ExitCode {
        let message = "\(error)"
        log.error(message)
        if options.log != nil {
            _ = try? FileDescriptors.writeAll(STDERR_FILENO, Array((message + "\n").utf8))
        }
        return ExitCode(1)
    }

    /// Runs `body`, turning any error into runc's failure output.
    func perform(_ body: () throws -> Void) throws {
        do { try body() } catch let exit as ExitCode { throw exit } catch { throw fail(error) }
    }
}

func printJSON(_ data: Data) {
    _ = try? FileDescriptors.writeAll(STDOUT_FILENO, Array(data) + [UInt8(ascii: "\n")])
}

func printLine(_ text: String) {
    _ = try? FileDescriptors.writeAll(STDOUT_FILENO, Array((text + "\n").utf8))
}

/// Signal names and numbers as runc accepts them (`9`, `KILL`, `SIGKILL`).
enum SignalName {
    static let names: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "ILL": SIGILL, "TRAP": SIGTRAP, "ABRT": SIGABRT, "BUS": SIGBUS,
        "FPE": SIGFPE, "KILL": SIGKILL, "USR1": SIGUSR1, "SEGV": SIGSEGV, "USR2": SIGUSR2, "PIPE": SIGPIPE, "ALRM": SIGALRM,
        "TERM": SIGTERM, "STKFLT": SIGSTKFLT, "CHLD": SIGCHLD, "CONT": SIGCONT, "STOP": SIGSTOP, "TSTP": SIGTSTP,
        "TTIN": SIGTTIN, "TTOU": SIGTTOU, "URG": SIGURG, "XCPU": SIGXCPU, "XFSZ": SIGXFSZ, "VTALRM": SIGVTALRM,
        "PROF": SIGPROF, "WINCH": SIGWINCH, "IO": SIGIO, "PWR": SIGPWR, "SYS": SIGSYS,
    ]

    static func parse(_ text: String) throws -> Int32 {
        if let number = Int32(text) {
            guard number > 0, number < 65 else { throw RuntimeError("unknown signal \"\(text)\"") }
            return number
        }
        let upper = text.uppercased()
        let name = upper.hasPrefix("SIG") ? String(upper.dropFirst(3)) : upper
        guard let number = names[name] else { throw RuntimeError("unknown signal \"\(text)\"") }
        return number
    }
}
