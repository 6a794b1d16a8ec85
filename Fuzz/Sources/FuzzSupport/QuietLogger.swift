import Logging

/// Devices log every bad request; a fuzzer sends millions of them.
public func quietLogger() -> Logger {
    Logger(label: "fuzz") { _ in SwiftLogNoOpLogHandler() }
}
