import AgentProtocol
import Foundation
import Glibc
import Runtime
import Testing

/// The synchronous `AgentClient` against a scripted agent on a socketpair: calls from
/// several threads share the connection and are answered in any order, a timeout drops
/// the late response, the agent's status and the connection's end reach the caller.
@Suite struct AgentClientTests {
    /// The agent's end of the socketpair: reads requests, answers when told.
    final class ScriptedAgent {
        let channel: FrameChannel
        let client: AgentClient

        init() throws {
            var fds: [Int32] = [0, 0]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
                throw RuntimeError("socketpair: errno \(errno)")
            }
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fds[1], SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            channel = FrameChannel(fd: fds[1])
            client = AgentClient(socket: fds[0])
        }

        func nextRequest() throws -> (stream: UInt32, request: Ttrpc_Request) {
            guard let frame = try channel.readFrame() else { throw RuntimeError("the client closed the connection") }
            return (frame.streamID, try Ttrpc_Request(serializedBytes: frame.payload))
        }

        func answer(_ stream: UInt32, payload: Data) throws {
            var response = Ttrpc_Response()
            response.payload = payload
            try channel.writeFrame(TTRPCFrame(streamID: stream, type: .response, payload: try response.serializedBytes()))
        }

        func fail(_ stream: UInt32, code: Int32, message: String) throws {
            var response = Ttrpc_Response()
            response.status.code = code
            response.status.message = message
            try channel.writeFrame(TTRPCFrame(streamID: stream, type: .response, payload: try response.serializedBytes()))
        }
    }

    /// A call run on its own thread; `result` waits for it (bounded).
    final class Background<T>: @unchecked Sendable {  // @unchecked: `outcome` is written once, before `done` is signalled, and read after
        private var outcome: Result<T, any Error>?
        private let done = DispatchSemaphore(value: 0)

        init(_ body: @escaping () throws -> T) {
            Thread { [self] in
                outcome = Result { try body() }
                done.signal()
            }.start()
        }

        func result() -> Result<T, any Error>? {
            done.wait(timeout: .now() + .seconds(20)) == .success ? outcome : nil
        }
    }

    @Test func callsFromTwoThreadsAreAnsweredInEitherOrder() throws {
        let agent = try ScriptedAgent()
        let client = agent.client
        let check = Background { try client.check(timeout: .seconds(10)).status }
        let version = Background { try client.version(timeout: .seconds(10)).agentVersion }
        // Both requests arrive before either is answered: the first caller's wait does not
        // hold up the second's send.
        let first = try agent.nextRequest(), second = try agent.nextRequest()
        #expect(first.stream != second.stream)
        for request in [second, first] {
            if request.request.method == "Check" {
                var reply = Grpc_HealthCheckResponse()
                reply.status = .serving
                try agent.answer(request.stream, payload: try reply.serializedData())
            } else {
                var reply = Grpc_VersionCheckResponse()
                reply.agentVersion = "scripted"
                try agent.answer(request.stream, payload: try reply.serializedData())
            }
        }
        #expect(try check.result()?.get() == .serving)
        #expect(try version.result()?.get() == "scripted")
    }

    @Test func timeoutTravelsAndTheLateResponseIsDropped() throws {
        let agent = try ScriptedAgent()
        let client = agent.client
        let late = Background { try client.check(timeout: .milliseconds(300)) }
        let unanswered = try agent.nextRequest()
        #expect(unanswered.request.service == AgentServiceName.health && unanswered.request.method == "Check")
        #expect(unanswered.request.timeoutNano == 300_000_000)
        guard case .failure(AgentClientError.timedOut(let method))? = late.result() else {
            Issue.record("the unanswered call did not time out")
            return
        }
        #expect(method == "grpc.Health/Check")

        // The late answer finds no caller; the next call gets its own.
        var stale = Grpc_HealthCheckResponse()
        stale.status = .notServing
        try agent.answer(unanswered.stream, payload: try stale.serializedData())
        let next = Background { try client.check(timeout: .seconds(10)).status }
        let request = try agent.nextRequest()
        #expect(request.stream != unanswered.stream)
        var fresh = Grpc_HealthCheckResponse()
        fresh.status = .serving
        try agent.answer(request.stream, payload: try fresh.serializedData())
        #expect(try next.result()?.get() == .serving)
    }

    @Test func statusAndConnectionEndReachTheCaller() throws {
        let agent = try ScriptedAgent()
        let client = agent.client
        let refused = Background { try client.startContainer(Grpc_StartContainerRequest(), timeout: .seconds(10)) }
        let request = try agent.nextRequest()
        #expect(request.request.method == "StartContainer")
        try agent.fail(request.stream, code: RPCCode.notFound.rawValue, message: "no such container")
        guard case .failure(AgentClientError.rpc(let status))? = refused.result() else {
            Issue.record("the agent's status did not reach the caller")
            return
        }
        #expect(status == RPCError(.notFound, "no such container"))

        let pending = Background { try client.waitProcess(Grpc_WaitProcessRequest()) }
        _ = try agent.nextRequest()
        agent.channel.shutdownBoth()
        guard case .failure(AgentClientError.connectionClosed)? = pending.result() else {
            Issue.record("a pending call outlived the connection")
            return
        }
        #expect(throws: AgentClientError.self) { try client.check(timeout: .seconds(1)) }
    }
}
