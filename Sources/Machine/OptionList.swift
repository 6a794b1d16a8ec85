/// The `key=value[,key=value...]` syntax of `--disk`, `--net`, `--vsock` and `--fs`: split once,
/// with every mistake reported against the flag and the text the user typed.
public struct OptionList {
    /// A mistake in one option list, phrased for the user.
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    public let flag: String
    public let text: String
    public let pairs: [(key: String, value: String)]

    public init(flag: String, text: String) throws {
        self.flag = flag
        self.text = text
        var pairs: [(key: String, value: String)] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw Error(description: "invalid \(flag) '\(text)': '\(item)' is not key=value")
            }
            pairs.append((String(parts[0]), String(parts[1])))
        }
        self.pairs = pairs
    }

    /// An error about this option list.
    public func error(_ problem: String) -> Error {
        Error(description: "invalid \(flag) '\(text)': \(problem)")
    }

    public func unknownKey(_ key: String, known: [String]) -> Error {
        error("unknown key '\(key)' (\(known.joined(separator: ", ")))")
    }

    /// An on/off value.
    public func flag(_ key: String, _ value: String) throws -> Bool {
        switch value {
        case "on", "true", "yes": return true
        case "off", "false", "no": return false
        default: throw error("\(key) must be on or off, not '\(value)'")
        }
    }
}
