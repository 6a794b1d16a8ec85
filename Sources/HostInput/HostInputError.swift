import Glibc

/// Why a file or a document a caller handed us was refused. Every case names what was
/// refused (the file's role and path, or the field's path in the document).
public enum HostInputError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(role: String, path: String, errno: Int32)
    /// `kind` says what it is instead ("a FIFO", "a character device").
    case notARegularFile(role: String, path: String, kind: String)
    case empty(role: String, path: String)
    case tooLarge(role: String, path: String, size: Int, limit: Int)
    case readFailed(role: String, path: String, errno: Int32)
    /// A path (or any string) with an embedded NUL: the kernel would see only its prefix.
    case nulCharacter(field: String)
    /// The same key twice in one JSON object: Foundation keeps the last one silently.
    case duplicateKey(field: String)
    case nestedTooDeep(field: String, limit: Int)

    public var description: String {
        switch self {
        case .cannotOpen(let role, let path, let err):
            return "cannot open \(role) '\(path)': \(String(cString: strerror(err)))"
        case .notARegularFile(let role, let path, let kind):
            return "\(role) '\(path)' is not a regular file (it is \(kind))"
        case .empty(let role, let path):
            return "\(role) '\(path)' is empty"
        case .tooLarge(let role, let path, let size, let limit):
            return "\(role) '\(path)' is too large (\(size) bytes, at most \(limit) accepted)"
        case .readFailed(let role, let path, let err):
            return "cannot read \(role) '\(path)': \(String(cString: strerror(err)))"
        case .nulCharacter(let field):
            return "\(field): must not contain a NUL character"
        case .duplicateKey(let field):
            return "\(field): duplicate key (each key may appear once per object)"
        case .nestedTooDeep(let field, let limit):
            return "\(field): nested more than \(limit) levels deep"
        }
    }
}

extension String {
    /// Throws when the string holds a NUL, which would cut it short as a C path.
    public func checkNoNul(field: String) throws {
        if utf8.contains(0) { throw HostInputError.nulCharacter(field: field) }
    }
}
