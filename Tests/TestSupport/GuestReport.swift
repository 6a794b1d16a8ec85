import Foundation

/// What a test guest reported on its serial console as "PREFIX key=value" lines
/// (guest/include/guest_report.h), the one reader of that channel for every Linux test.
///
/// Only whole lines count. The console reaches the host a byte at a time (one UART exit
/// each), so a test polling a running guest's output can catch a line half written:
/// "KATA-VSOCK gshut=wrote=0 shut=0 " read as the final value failed CI once. A prefix
/// anywhere in the line counts too, because a kernel message can start the line first.
public struct GuestReport: Sendable {
    /// Every value of each key, in the order the guest printed them.
    public let values: [String: [String]]

    public init(_ console: String, prefix: String) {
        let marker = prefix + " "
        var values: [String: [String]] = [:]
        var lines = console.split(whereSeparator: \.isNewline)
        if let last = console.last, !last.isNewline, !lines.isEmpty { lines.removeLast() }
        for line in lines {
            guard let start = line.range(of: marker) else { continue }
            let pair = line[start.upperBound...]
            guard let eq = pair.firstIndex(of: "=") else { continue }
            values[String(pair[..<eq]), default: []].append(String(pair[pair.index(after: eq)...]))
        }
        self.values = values
    }

    /// The last value reported for `key`.
    public subscript(key: String) -> String? { values[key]?.last }

    /// The last value of each key.
    public var latest: [String: String] { values.compactMapValues(\.last) }
}
