import AgentProtocol
import Foundation
import Runtime
import Testing

/// The agent answers grpc.Health over ttrpc on a Unix socket, for several clients.
@Suite struct HealthTests {
    @Test func checkAndVersionOverUnixSocket() async throws {
        let agent = try AgentHarness()
        defer { agent.stop() }
        let health = try await agent.client.check()
        #expect(health.status == .serving)
        let version = try await agent.client.version()
        #expect(version.agentVersion == AgentProtocolVersion.agentVersion)
        #expect(version.grpcVersion == AgentProtocolVersion.protocolVersion)

        // A second connection is served independently, and concurrent calls on one
        // connection each get their own answer.
        let second = try agent.connect()
        try await withThrowingTaskGroup(of: Grpc_HealthCheckResponse.ServingStatus.self) { group in
            for _ in 0..<16 { group.addTask { try await second.check().status } }
            for try await status in group { #expect(status == .serving) }
        }
    }

    @Test func unknownMethodIsUnimplemented() async throws {
        let agent = try AgentHarness()
        defer { agent.stop() }
        do {
            let _: Grpc_Empty = try await agent.client.call("grpc.AgentService", "NoSuchMethod", Grpc_Empty())
            Issue.record("an unknown method succeeded")
        } catch let error as AgentClientError {
            #expect(error.rpcCode == .unimplemented)
        }
        #expect(try await agent.client.check().status == .serving)
    }
}
