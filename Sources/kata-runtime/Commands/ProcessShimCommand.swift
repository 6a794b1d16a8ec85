import ArgumentParser
import Runtime

/// `process-shim ID` (hidden): what `create` and `exec` re-execute as a container process's
/// stand-in on the host (its pid, its stdio, its exit status).
struct ProcessShimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "process-shim", abstract: "Internal: a container process's host side.",
                                                    shouldDisplay: false)
    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("exec-id")) var execId: String = ""
    @Option(name: .customLong("start-fifo")) var startFifo: String?
    @Flag var terminal = false
    @Argument var id: String

    func run() throws {
        let shim = ProcessShim(store: StateStore(root: global.root), containerId: id, execId: execId, terminal: terminal,
                               startFifo: startFifo)
        throw ExitCode(shim.run())
    }
}
