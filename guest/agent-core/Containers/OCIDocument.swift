import FoundationEssentials
import OCI

extension OCIObject {
    /// An OCI document the runtime sent (the spec, an exec's process, new resources);
    /// one that does not decode is INVALID_ARGUMENT naming the member
    /// ("bad OCI spec: process.user: expected an object").
    static func decode(_ data: Data, as name: String) throws(AgentError) -> Self {
        do {
            return try decode(data)
        } catch {
            throw .invalid("bad \(name): \(error)")
        }
    }
}
