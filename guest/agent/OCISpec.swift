import FoundationEssentials

/// The part of the OCI runtime spec (config.json) the agent implements, decoded from the
/// JSON the runtime sends in CreateContainerRequest.oci_spec_json. Unknown fields are
/// ignored, as OCI requires; fields the agent would have to act on but cannot (a user
/// namespace, joining namespaces by path) are rejected by `ContainerPlan`.
struct OCISpec: OCIJSONDecodable {
    static let jsonName = "OCI spec"

    var ociVersion: String?
    var process: OCIProcess?
    var root: OCIRoot?
    var hostname: String?
    var mounts: [OCIMount]?
    var linux: OCILinux?
}

/// An OCI object the runtime sends as JSON (the spec, an exec's process, new resources).
/// Unknown fields are ignored, as OCI requires; a decoding failure is INVALID_ARGUMENT
/// naming the field.
protocol OCIJSONDecodable: Decodable {
    /// What the object is called in errors ("bad OCI spec: ...").
    static var jsonName: String { get }
}

extension OCIJSONDecodable {
    static func decode(_ bytes: [UInt8]) throws(AgentError) -> Self {
        do {
            return try JSONDecoder().decode(Self.self, from: Data(bytes))
        } catch {
            throw .invalid("bad \(jsonName): \(describeDecodingFailure(error))")
        }
    }
}

/// "field.path: what was wrong", so that a refused spec names the field, as runc does.
private func describeDecodingFailure(_ error: any Error) -> String {
    func path(_ context: DecodingError.Context) -> String {
        let joined = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return joined.isEmpty ? "(top level)" : String(joined.drop { $0 == "." })
    }
    guard let failure = error as? DecodingError else { return "\(error)" }
    switch failure {
    case .typeMismatch(let type, let context): return "\(path(context)): expected \(type)"
    case .valueNotFound(let type, let context): return "\(path(context)): expected \(type), found null"
    case .keyNotFound(let key, let context):
        return "\(path(context)): missing \(key.stringValue)"
    case .dataCorrupted(let context): return "\(path(context)): \(context.debugDescription)"
    @unknown default: return "\(error)"
    }
}

struct OCIProcess: OCIJSONDecodable {
    static let jsonName = "OCI process"

    var terminal: Bool?
    var consoleSize: OCIConsoleSize?
    var user: OCIUser?
    var args: [String]?
    var env: [String]?
    var cwd: String?
    var capabilities: OCICapabilities?
    var rlimits: [OCIRlimit]?
    var noNewPrivileges: Bool?
    var oomScoreAdj: Int?
}

struct OCIConsoleSize: Decodable {
    var height: UInt32
    var width: UInt32
}

struct OCIUser: Decodable {
    var uid: UInt32?
    var gid: UInt32?
    var additionalGids: [UInt32]?
}

struct OCICapabilities: Decodable {
    var bounding: [String]?
    var effective: [String]?
    var inheritable: [String]?
    var permitted: [String]?
    var ambient: [String]?
}

struct OCIRlimit: Decodable {
    var type: String
    var hard: UInt64
    var soft: UInt64
}

struct OCIRoot: Decodable {
    var path: String
    var readonly: Bool?
}

struct OCIMount: Decodable {
    var destination: String
    var type: String?
    var source: String?
    var options: [String]?
}

struct OCILinux: Decodable {
    var namespaces: [OCINamespace]?
    var resources: OCIResources?
    var maskedPaths: [String]?
    var readonlyPaths: [String]?
    var cgroupsPath: String?
}

struct OCINamespace: Decodable {
    var type: String
    var path: String?
}

struct OCIResources: OCIJSONDecodable {
    /// UpdateContainerRequest.resources_json.
    static let jsonName = "resources"

    var memory: OCIMemory?
    var cpu: OCICPU?
    var pids: OCIPids?
}

struct OCIMemory: Decodable {
    var limit: Int64?
    var swap: Int64?
}

struct OCICPU: Decodable {
    var quota: Int64?
    var period: UInt64?
    var shares: UInt64?
}

struct OCIPids: Decodable {
    var limit: Int64
}
