import AgentProtocol
import SwiftProtobuf

/// Maps "service/method" to a handler that decodes the typed request, runs, and encodes
/// the typed response. Undecodable requests are INVALID_ARGUMENT; unknown methods are
/// UNIMPLEMENTED; agent errors keep their status.
struct RPCRouter {
    typealias Handler = ([UInt8]) throws -> [UInt8]
    private var handlers: [String: Handler] = [:]

    mutating func register<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ service: String, _ method: String, _ body: @escaping (Request) throws -> Response
    ) {
        handlers["\(service)/\(method)"] = { payload in
            let request: Request
            do {
                request = try Request(serializedBytes: payload)
            } catch {
                throw RPCError(.invalidArgument, "\(method): cannot decode \(Request.protoMessageName): \(error)")
            }
            let response = try body(request)
            let bytes: [UInt8] = try response.serializedBytes()
            return bytes
        }
    }

    /// Runs the method's handler; every failure comes back as an `RPCError`.
    func handle(service: String, method: String, payload: [UInt8]) -> Result<[UInt8], RPCError> {
        guard let handler = handlers["\(service)/\(method)"] else {
            return .failure(RPCError(.unimplemented, "service \(service): method \(method) not implemented"))
        }
        do {
            return .success(try handler(payload))
        } catch let error as RPCError {
            return .failure(error)
        } catch let error as AgentError {
            return .failure(error.rpcError)
        } catch {
            return .failure(RPCError(.internalError, "\(method): \(error)"))
        }
    }
}
