import Devices
import Synchronization

/// Firecracker's MMDS data store: one JSON document per VM that the host sets (`PUT
/// /mmds`), merges into (`PATCH /mmds`, RFC 7396) and reads (`GET /mmds`), and that the
/// guest reads by JSON pointer through the metadata service. An update either fits the
/// size limit whole or changes nothing.
public final class MmdsDataStore: MmdsDataSource {
    /// Firecracker's default for `--mmds-size-limit`: its API payload limit.
    public static let defaultSizeLimit = 51_200

    public let sizeLimit: Int
    private let state = Mutex<(value: JSONValue, initialized: Bool)>((.object([:]), false))

    public init(sizeLimit: Int = MmdsDataStore.defaultSizeLimit) {
        self.sizeLimit = sizeLimit
    }

    public var value: JSONValue { state.withLock { $0.value } }

    public func put(_ value: JSONValue) throws {
        try checkSize(value)
        state.withLock { $0 = (value, true) }
    }

    public func patch(_ patch: JSONValue) throws {
        try state.withLock { s in
            guard s.initialized else { throw ApiError("The MMDS data store is not initialized (PUT /mmds first).") }
            let merged = Self.merge(patch, into: s.value)
            try checkSize(merged)
            s.value = merged
        }
    }

    private func checkSize(_ value: JSONValue) throws {
        let size = value.serialized.utf8.count
        guard size <= sizeLimit else {
            // 413, as Firecracker answers this one error.
            throw ApiError("The MMDS data store would be \(size) bytes, over its limit of \(sizeLimit) (--mmds-size-limit); nothing was changed.",
                           status: 413)
        }
    }

    /// RFC 7396: an object patch merges key by key, null removes, anything else replaces.
    static func merge(_ patch: JSONValue, into target: JSONValue) -> JSONValue {
        guard case .object(let changes) = patch else { return patch }
        var result: [String: JSONValue]
        if case .object(let existing) = target { result = existing } else { result = [:] }
        for (key, change) in changes {
            if change == .null {
                result[key] = nil
            } else {
                result[key] = merge(change, into: result[key] ?? .null)
            }
        }
        return .object(result)
    }

    public func lookup(pointer: String, json: Bool) -> MmdsLookup {
        guard let found = Self.resolve(pointer, in: value) else { return .notFound }
        if json { return .value(found.serialized) }
        switch found {
        case .string(let text):
            return .value(text)
        case .object(let members):
            // IMDS form: the keys in order, a nested object's with a trailing slash.
            return .value(members.keys.sorted().map { key in
                if case .object = members[key] { return key + "/" }
                return key
            }.joined(separator: "\n"))
        default:
            return .unsupportedInImds
        }
    }

    /// A reference token with ~1 for "/" and ~0 for "~"; any other "~" makes it invalid.
    static func unescape(_ token: Substring) -> String? {
        var key = ""
        var escaped = false
        for character in token {
            if escaped {
                switch character {
                case "0": key.append("~")
                case "1": key.append("/")
                default: return nil
                }
                escaped = false
            } else if character == "~" {
                escaped = true
            } else {
                key.append(character)
            }
        }
        return escaped ? nil : key
    }

    /// RFC 6901: "" is the whole document, "/a/b" walks objects by key (with ~1 for "/"
    /// and ~0 for "~") and arrays by decimal index.
    static func resolve(_ pointer: String, in document: JSONValue) -> JSONValue? {
        guard !pointer.isEmpty else { return document }
        guard pointer.hasPrefix("/") else { return nil }
        var current = document
        for token in pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            guard let key = unescape(token) else { return nil }
            switch current {
            case .object(let members):
                guard let next = members[key] else { return nil }
                current = next
            case .array(let items):
                guard key.allSatisfy(\.isASCII), key.allSatisfy(\.isNumber), !key.isEmpty, key == "0" || !key.hasPrefix("0"),
                      let index = Int(key), index < items.count else { return nil }
                current = items[index]
            default:
                return nil
            }
        }
        return current
    }
}
