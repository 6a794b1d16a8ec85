import AgentProtocol
import Foundation
import Glibc

/// The runtime's synchronous view of one agent connection: the calls the lifecycle
/// commands, the monitor and the process shim make, each with a timeout, errors that say
/// which call failed.
public final class AgentSession: Sendable {
    public let client: AgentClient
    public let endpoint: AgentEndpoint

    public init(endpoint: AgentEndpoint, timeout: Duration? = .seconds(60), dial: AgentDialPolicy = .standard) throws {
        self.endpoint = endpoint
        do {
            client = try AgentClient(connectingTo: endpoint, defaultTimeout: timeout, dial: dial)
        } catch {
            throw RuntimeError("cannot reach the sandbox's agent (\(Self.describe(endpoint))): \(error)")
        }
    }

    static func describe(_ endpoint: AgentEndpoint) -> String {
        switch endpoint {
        case .unix(let path): return path
        case .hybridVsock(let path, let port): return "\(path) port \(port)"
        }
    }

    /// Connects and asks Check until the agent answers or `deadline` passes; `stillWorthWaiting`
    /// ends the wait early (the VM exited).
    public static func waitForAgent(endpoint: AgentEndpoint, deadline: Date, stillWorthWaiting: () -> String?) throws -> AgentSession {
        var lastError = "no attempt"
        while Date() < deadline {
            if let reason = stillWorthWaiting() { throw RuntimeError("the sandbox VM stopped before its agent answered: \(reason)") }
            do {
                let session = try AgentSession(endpoint: endpoint, timeout: .seconds(30), dial: .once)
                _ = try session.call("Check") { try $0.check(timeout: .seconds(5)) }
                return session
            } catch {
                lastError = "\(error)"
            }
            usleep(200_000)
        }
        throw RuntimeError("the agent did not answer within the dial timeout: \(lastError)")
    }

    /// One call, with its name in the error message. Timeouts are the client's (per call
    /// or the session's default): the agent is told too and gives up on its side.
    @discardableResult
    public func call<T>(_ name: String, _ body: (AgentClient) throws -> T) throws -> T {
        do {
            return try body(client)
        } catch {
            throw RuntimeError("agent \(name): \(error)")
        }
    }

    public func close() { client.close() }
}
