import Logging

/// The monitor logs to its stderr, which `create` points at monitor.log in the state dir.
enum MonitorLogging {
    static func bootstrap(debug: Bool) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = debug ? .debug : .info
            return handler
        }
    }
}
