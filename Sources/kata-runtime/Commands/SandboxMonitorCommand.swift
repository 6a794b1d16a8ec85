import ArgumentParser
import Runtime
import LinuxSupport

/// `sandbox-monitor ID` (hidden): what `create` re-executes as the sandbox's monitor daemon,
/// reporting readiness (or the configuration's error) on descriptor 3.
struct SandboxMonitorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sandbox-monitor", abstract: "Internal: a sandbox's monitor.",
                                                    shouldDisplay: false)
    @OptionGroup var global: GlobalOptions
    @Argument var id: String

    func run() throws {
        let invocation = Invocation(global)
        let config: RuntimeConfiguration
        do { config = try RuntimeConfiguration.load(explicitPath: global.config) } catch {
            _ = try? FileDescriptors.writeAll(3, Array("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        MonitorLogging.bootstrap(debug: global.debug || config.runtime.enableDebug)
        let monitor = SandboxMonitor(store: StateStore(root: global.root), id: id, config: config,
                                     logger: .init(label: "kata-runtime.monitor"))
        _ = invocation
        throw ExitCode(monitor.run(readyFd: 3))
    }
}
