import AgentProtocol
import Foundation
import Runtime
import Synchronization
import Testing

/// The agent answers grpc.Health over ttrpc on a Unix socket, for several clients.
@Suite struct HealthTests {
    @Test func checkAndVersionOverUnixSocket() throws {
        let agent = try AgentHarness()
        defer { agent.stop() }
        let health = try agent.client.check()
        #expect(health.status == .serving)
        let version = try agent.client.version()
        #expect(version.agentVersion == AgentProtocolVersion.agentVersion)
        #expect(version.grpcVersion == AgentProtocolVersion.protocolVersion)

        // A second connection is served independently, and concurrent calls on one
        // connection each get their own answer.
        let second = try agent.connect()
        let statuses = Mutex<[Result<Grpc_HealthCheckResponse.ServingStatus, any Error>]>([])
        let done = DispatchGroup()
        for _ in 0..<16 {
            done.enter()
            Thread {
                let status = Result { try second.check().status }
                statuses.withLock { $0.append(status) }
                done.leave()
            }.start()
        }
        #expect(done.wait(timeout: .now() + .seconds(120)) == .success)
        let answers = statuses.withLock { $0 }
        #expect(answers.count == 16)
        for status in answers { #expect(try status.get() == .serving) }
    }

    @Test func unknownMethodIsUnimplemented() throws {
        let agent = try AgentHarness()
        defer { agent.stop() }
        do {
            let _: Grpc_Empty = try agent.client.call("grpc.AgentService", "NoSuchMethod", Grpc_Empty())
            Issue.record("an unknown method succeeded")
        } catch let error as AgentClientError {
            #expect(error.rpcCode == .unimplemented)
        }
        #expect(try agent.client.check().status == .serving)
    }
}
