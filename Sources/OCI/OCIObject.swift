/// One object of the runtime spec: the members this model knows, typed (`Fields`), and
/// every other member as raw JSON. Decoding then encoding loses nothing, so an extension
/// the host does not know (`linux.seccomp`, `process.ioPriority`, a `vm` section) still
/// reaches the guest. The known members read as if they were the object's own
/// (`spec.process?.user.uid`).
@dynamicMemberLookup
public struct OCIObject<Fields: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    public var fields: Fields
    /// Members `Fields` does not declare, by name.
    public var unknownMembers: [String: JSONValue]

    public init(_ fields: Fields, unknownMembers: [String: JSONValue] = [:]) {
        self.fields = fields
        self.unknownMembers = unknownMembers
    }

    public subscript<Value>(dynamicMember member: WritableKeyPath<Fields, Value>) -> Value {
        get { fields[keyPath: member] }
        set { fields[keyPath: member] = newValue }
    }

    public init(from decoder: any Decoder) throws {
        fields = try Fields(from: decoder)
        let known = Self.knownNames(fields)
        let object = try decoder.container(keyedBy: JSONKey.self)
        var unknown: [String: JSONValue] = [:]
        for key in object.allKeys where !known.contains(key.stringValue) {
            unknown[key.stringValue] = try object.decode(JSONValue.self, forKey: key)
        }
        unknownMembers = unknown
    }

    public func encode(to encoder: any Encoder) throws {
        try fields.encode(to: encoder)
        guard !unknownMembers.isEmpty else { return }
        let known = Self.knownNames(fields)
        var object = encoder.container(keyedBy: JSONKey.self)
        for (name, value) in unknownMembers where !known.contains(name) {
            try object.encode(value, forKey: JSONKey(name))
        }
    }

    /// The member names `Fields` declares: its stored properties, which synthesized Codable
    /// names after them (the spec's names are Swift identifiers).
    private static func knownNames(_ fields: Fields) -> Set<String> {
        Set(Mirror(reflecting: fields).children.compactMap(\.label))
    }
}
