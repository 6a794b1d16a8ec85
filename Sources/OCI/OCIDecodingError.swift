#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Why an OCI document did not decode, naming the member as runc does
/// ("process.user.uid: expected a number"), so that the host and the guest refuse a spec
/// with the same words.
public struct OCIDecodingError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The member's path (`mounts[0].destination`); nil for the document as a whole.
    public let field: String?
    public let problem: String

    public var description: String { "\(field ?? "(top level)"): \(problem)" }

    init(field: String?, problem: String) {
        self.field = field
        self.problem = problem
    }

    init(_ error: DecodingError) {
        switch error {
        case .keyNotFound(let key, let context):
            self.init(field: Self.path(context.codingPath + [key]), problem: "missing")
        case .typeMismatch(let type, let context):
            self.init(field: Self.path(context.codingPath), problem: "expected \(Self.kind(type))")
        case .valueNotFound(let type, let context):
            self.init(field: Self.path(context.codingPath), problem: "null where \(Self.kind(type)) is required")
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            let detail = context.underlyingError.map { " (\($0))" } ?? ""
            self.init(field: nil, problem: "not valid JSON\(detail)")
        case .dataCorrupted(let context):
            self.init(field: Self.path(context.codingPath), problem: context.debugDescription)
        @unknown default:
            self.init(field: nil, problem: "\(error)")
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String? {
        var text = ""
        for key in keys {
            if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
        }
        return text.isEmpty ? nil : text
    }

    private static func kind(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is any BinaryInteger.Type, is any BinaryFloatingPoint.Type: "a number"
        case is [Any].Type: "an array"
        default: "an object"
        }
    }
}

extension OCIObject {
    /// Decodes one OCI document (config.json, an exec's process, new resources).
    public static func decode(_ data: Data) throws(OCIDecodingError) -> Self {
        do {
            return try JSONDecoder().decode(Self.self, from: data)
        } catch let error as DecodingError {
            throw OCIDecodingError(error)
        } catch {
            throw OCIDecodingError(field: nil, problem: "\(error)")
        }
    }

    /// The document as JSON, members sorted (the same spec gives the same bytes).
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}
