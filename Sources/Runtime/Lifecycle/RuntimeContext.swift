import Foundation

/// What every lifecycle command needs: the state store, the configuration, how to re-run
/// this executable (for the monitor and the shims), and where warnings go.
public struct RuntimeContext {
    public var store: StateStore
    public var config: RuntimeConfiguration
    /// Path of the kata-runtime executable (/proc/self/exe resolved).
    public var executable: String
    /// Global arguments the re-executed runtime needs (--root, --config, --log...).
    public var globalArguments: [String]
    public var warn: (String) -> Void
    public var debug: (String) -> Void

    public init(store: StateStore, config: RuntimeConfiguration, executable: String, globalArguments: [String],
                warn: @escaping (String) -> Void, debug: @escaping (String) -> Void) {
        self.store = store
        self.config = config
        self.executable = executable
        self.globalArguments = globalArguments
        self.warn = warn
        self.debug = debug
    }

    public static var selfExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
