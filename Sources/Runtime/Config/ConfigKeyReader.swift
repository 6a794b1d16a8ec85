import TOMLKit

extension RuntimeConfiguration {
    /// Typed reads of configuration.toml with errors that name the key, and the warnings
    /// for what a real Kata file holds that this runtime does not do: one per key, since
    /// Kata's files set dozens of keys we have no use for and an error would stop every
    /// command.
    final class KeyReader {
        let file: String
        private(set) var warnings: [String] = []
        private var warned: Set<String> = []

        init(file: String) { self.file = file }

        /// A key this runtime does not implement: ignored, with a warning unless its value
        /// is off anyway (false, 0, "" or empty), as most of a stock Kata file is.
        func ignore(_ key: String, _ value: TOMLValueConvertible?) {
            guard let value, Self.isSet(value) else { return }
            warn(key, "\(key): not implemented by kata-swift; ignored")
        }

        /// A value Kata accepts that this runtime has no counterpart for: the one it uses instead.
        func substitute(_ key: String, _ value: String, with replacement: String) {
            warn(key, "\(key): '\(value)' is not available in kata-swift; using \(replacement)")
        }

        private func warn(_ key: String, _ message: String) {
            guard warned.insert(key).inserted else { return }
            warnings.append("\(file): \(message)")
        }

        static func isSet(_ value: TOMLValueConvertible) -> Bool {
            if let bool = value.bool { return bool }
            if let int = value.int { return int != 0 }
            if let double = value.double { return double != 0 }
            if let string = value.string { return !string.isEmpty }
            if let array = value.array { return !array.isEmpty }
            if let table = value.table { return table.keys.contains { table[$0].map(isSet) ?? false } }
            return true
        }

        func table(_ value: TOMLValueConvertible?, _ key: String) throws -> TOMLTable {
            guard let table = value?.table else { throw ConfigError("\(file): \(key): expected a table") }
            return table
        }

        func string(_ value: TOMLValueConvertible?, _ key: String) throws -> String {
            guard let string = value?.string else { throw ConfigError("\(file): \(key): expected a string, got \(describe(value))") }
            do { try string.checkNoNul(field: key) } catch { throw ConfigError("\(file): \(error)") }
            return string
        }

        func path(_ value: TOMLValueConvertible?, _ key: String) throws -> String {
            let path = try string(value, key)
            guard path.hasPrefix("/") else { throw ConfigError("\(file): \(key): '\(path)' is not an absolute path") }
            return path
        }

        func strings(_ value: TOMLValueConvertible?, _ key: String) throws -> [String] {
            guard let array = value?.array else { throw ConfigError("\(file): \(key): expected an array of strings, got \(describe(value))") }
            return try array.enumerated().map { index, element in try string(element, "\(key)[\(index)]") }
        }

        func bool(_ value: TOMLValueConvertible?, _ key: String) throws -> Bool {
            guard let bool = value?.bool else { throw ConfigError("\(file): \(key): expected true or false, got \(describe(value))") }
            return bool
        }

        func int(_ value: TOMLValueConvertible?, _ key: String, _ range: ClosedRange<Int>) throws -> Int {
            guard let int = value?.int else { throw ConfigError("\(file): \(key): expected an integer, got \(describe(value))") }
            guard range.contains(int) else {
                throw ConfigError("\(file): \(key): \(int) is out of range (\(range.lowerBound) to \(range.upperBound))")
            }
            return int
        }

        /// An integer, or a float rounded up (Kata 3 reads default_vcpus as a float), in `range`.
        func roundedUp(_ value: TOMLValueConvertible?, _ key: String, _ range: ClosedRange<Int>) throws -> Int {
            guard let double = value?.double else { return try int(value, key, range) }
            guard double.isFinite, Double(range.lowerBound) <= double.rounded(.up), double.rounded(.up) <= Double(range.upperBound) else {
                throw ConfigError("\(file): \(key): \(double) is out of range (\(range.lowerBound) to \(range.upperBound))")
            }
            return Int(double.rounded(.up))
        }

        func describe(_ value: TOMLValueConvertible?) -> String {
            guard let value else { return "nothing" }
            return "\(value.type) \(value.debugDescription)"
        }
    }
}
