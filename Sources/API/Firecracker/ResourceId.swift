/// Firecracker's rule for the ids in `/drives/{id}` and `/network-interfaces/{id}`:
/// 1 to 64 ASCII letters, digits and underscores, and the body's id must equal the path's.
enum ResourceId {
    static func check(_ id: String, field: String) throws {
        guard !id.isEmpty, id.utf8.count <= 64,
              id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F })
        else { throw ApiError("\(field): invalid id '\(id)' (1 to 64 letters, digits or underscores)") }
    }

    /// A body's required id field: valid, and the path's id when the path has one.
    static func required(_ key: String, in object: StrictObject, pathId: String?) throws -> String {
        let id = try object.string(required: key)
        try check(id, field: object.name(key))
        try match(path: pathId, body: id, field: object.name(key))
        return id
    }

    static func match(path: String?, body: String, field: String) throws {
        if let path, path != body {
            throw ApiError("\(field): '\(body)' does not match the id in the path ('\(path)')")
        }
    }
}
