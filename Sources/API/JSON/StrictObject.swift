/// Reads one JSON object field by field, strictly: a key not in `allowed` is an error
/// (naming the key), as is a field of the wrong type or a missing required one. `path`
/// ("drives[0]", "machine-config") prefixes every message so that it names the field.
public struct StrictObject {
    public let path: String
    private let fields: [String: JSONValue]

    public init(_ value: JSONValue, path: String, allowed: [String]) throws {
        guard case .object(let fields) = value else {
            throw ApiError("\(path.isEmpty ? "the body" : path) must be a JSON object, not \(value.typeName)")
        }
        for key in fields.keys.sorted() where !allowed.contains(key) {
            throw ApiError("\(Self.name(path, key)): unknown field (expected one of: \(allowed.joined(separator: ", ")))")
        }
        self.path = path
        self.fields = fields
    }

    static func name(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    func name(_ key: String) -> String { Self.name(path, key) }

    /// The raw value; JSON null counts as absent (as for an optional field in Firecracker).
    public func value(_ key: String) -> JSONValue? {
        guard let value = fields[key], value != .null else { return nil }
        return value
    }

    public func has(_ key: String) -> Bool { value(key) != nil }

    func missing(_ key: String) -> ApiError { ApiError("\(name(key)): missing required field") }

    func wrongType(_ key: String, _ expected: String, _ value: JSONValue) -> ApiError {
        ApiError("\(name(key)): expected \(expected), got \(value.typeName)")
    }

    public func string(_ key: String) throws -> String? {
        guard let value = value(key) else { return nil }
        guard case .string(let s) = value else { throw wrongType(key, "a string", value) }
        return s
    }

    public func string(required key: String) throws -> String {
        guard let s = try string(key) else { throw missing(key) }
        return s
    }

    /// A non-empty string (paths, ids).
    public func nonEmptyString(required key: String) throws -> String {
        let s = try string(required: key)
        guard !s.isEmpty else { throw ApiError("\(name(key)): must not be empty") }
        return s
    }

    public func bool(_ key: String) throws -> Bool? {
        guard let value = value(key) else { return nil }
        guard case .bool(let b) = value else { throw wrongType(key, "a boolean", value) }
        return b
    }

    public func bool(required key: String) throws -> Bool {
        guard let b = try bool(key) else { throw missing(key) }
        return b
    }

    public func int(_ key: String, in range: ClosedRange<Int64>) throws -> Int64? {
        guard let value = value(key) else { return nil }
        guard case .int(let i) = value else { throw wrongType(key, "an integer", value) }
        guard range.contains(i) else {
            throw ApiError("\(name(key)): \(i) is out of range (\(range.lowerBound) to \(range.upperBound))")
        }
        return i
    }

    public func int(required key: String, in range: ClosedRange<Int64>) throws -> Int64 {
        guard let i = try int(key, in: range) else { throw missing(key) }
        return i
    }

    /// One of `choices` (an enumeration in Firecracker's API).
    public func choice(_ key: String, _ choices: [String]) throws -> String? {
        guard let s = try string(key) else { return nil }
        guard choices.contains(s) else {
            throw ApiError("\(name(key)): '\(s)' is not one of \(choices.joined(separator: ", "))")
        }
        return s
    }

    /// Fields we parse but do not implement: refused with a clear message when present.
    public func refuse(_ key: String, because why: String) throws {
        if has(key) { throw ApiError("\(name(key)): \(why)") }
    }

    /// A Firecracker rate limiter where we have none (the serial console's): absent, null,
    /// `{}` or null buckets are accepted, a real bucket is refused.
    public func noRateLimiter(_ key: String, because why: String) throws {
        guard let value = value(key) else { return }
        let limiter = try StrictObject(value, path: name(key), allowed: ["bandwidth", "ops"])
        try limiter.refuse("bandwidth", because: why)
        try limiter.refuse("ops", because: why)
    }
}
