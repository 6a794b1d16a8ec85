import Foundation

/// Waiting for something a test cannot be told about: polled until it holds or the time
/// is up, then looked at once more.
public enum Poll {
    @discardableResult
    public static func until(_ timeout: Double = 20, every microseconds: UInt32 = 50_000, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            usleep(microseconds)
        }
        return try condition()
    }
}
