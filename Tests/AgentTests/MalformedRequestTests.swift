import AgentProtocol
import Foundation
import Runtime
import Testing
import TestSupport

/// Wrong and malformed requests get errors (or, for a truncated frame, a dropped
/// connection) and the agent keeps serving everyone else.
@Suite struct MalformedRequestTests {
    @Test func wrongRequestsAnsweredWithStatus() throws {
        let agent = try AgentHarness()
        defer { agent.stop() }
        let client = agent.client
        func code(_ body: () throws -> Void) -> RPCCode? {
            do {
                try body()
                return .ok
            } catch let error as AgentClientError {
                return error.rpcCode
            } catch {
                return nil
            }
        }
        var start = Grpc_StartContainerRequest()
        start.containerID = "missing"
        #expect(code { _ = try client.startContainer(start) } == .notFound)
        #expect(code { _ = try client.wait("missing") } == .notFound)
        #expect(code { try client.signal("missing", SIGKILL) } == .notFound)
        #expect(code { try client.remove("missing") } == .notFound)
        // UpdateInterface checks everything before touching the interface (here the agent
        // shares the host's network: only refused requests are sent, on `lo`).
        var interface = Grpc_UpdateInterfaceRequest()
        interface.interface.name = "no-such-if0"
        #expect(code { _ = try client.updateInterface(interface) } == .notFound)
        interface.interface.name = "lo"
        var v6 = Grpc_IPAddress()
        v6.family = .v6
        v6.address = "127.0.0.2"  // an IPv4 address named IPv6
        v6.mask = "64"
        interface.interface.ipaddresses = [v6]
        #expect(code { _ = try client.updateInterface(interface) } == .invalidArgument)
        var v4 = Grpc_IPAddress()
        v4.family = .v4
        v4.address = "127.0.0.1"
        v4.mask = "33"
        interface.interface.ipaddresses = [v4]
        #expect(code { _ = try client.updateInterface(interface) } == .invalidArgument)
        v4.mask = "8"
        v4.address = "127.0.0.256"
        interface.interface.ipaddresses = [v4]
        #expect(code { _ = try client.updateInterface(interface) } == .invalidArgument)
        interface.interface.ipaddresses = []
        interface.interface.mtu = 1 << 20
        #expect(code { _ = try client.updateInterface(interface) } == .invalidArgument)
        interface.interface.hwAddr = ""
        interface.interface.mtu = 0
        interface.interface.device = "lo"
        interface.interface.name = "bad/name"
        #expect(code { _ = try client.updateInterface(interface) } == .invalidArgument)

        var pause = Grpc_PauseContainerRequest()
        pause.containerID = "missing"
        #expect(code { _ = try client.pauseContainer(pause) } == .notFound)

        let rootfs = try ContainerFixture.makeRootfs()
        var create = Grpc_CreateContainerRequest()
        create.containerID = "bad"
        create.ociSpecJson = Data("{not json".utf8)
        #expect(code { _ = try client.createContainer(create) } == .invalidArgument)
        create.ociSpecJson = Data(#"{"ociVersion":"1.0.2","root":{"path":"/"}}"#.utf8)
        #expect(code { _ = try client.createContainer(create) } == .invalidArgument)
        create.ociSpecJson = try ContainerFixture.spec(rootfs: rootfs + "/does-not-exist", process: ContainerFixture.process(["true"]))
        #expect(code { _ = try client.createContainer(create) } == .invalidArgument)
        create.ociSpecJson = try ContainerFixture.spec(rootfs: rootfs, process: ContainerFixture.process(["true"],
            extra: ["capabilities": ["bounding": ["CAP_NOT_A_THING"]]]))
        #expect(code { _ = try client.createContainer(create) } == .invalidArgument)
        // A field of the wrong type is named in the error, with its path.
        create.ociSpecJson = Data(#"{"ociVersion":"1.0.2","root":{"path":"/"},"process":{"args":["true"],"user":"root"}}"#.utf8)
        do {
            _ = try client.createContainer(create)
            Issue.record("a string process.user was accepted")
        } catch AgentClientError.rpc(let error) {
            #expect(error.rpcCode == .invalidArgument)
            #expect(error.message.contains("process.user"), "\(error.message)")
        }
        create.containerID = "../escape"
        create.ociSpecJson = try ContainerFixture.spec(rootfs: rootfs, process: ContainerFixture.process(["true"]))
        #expect(code { _ = try client.createContainer(create) } == .invalidArgument)

        // A program that does not exist fails at StartContainer, with the reason.
        create.containerID = "noprog"
        create.ociSpecJson = try ContainerFixture.spec(rootfs: rootfs, process: ContainerFixture.process(["/bin/no-such-program"]))
        _ = try client.createContainer(create)
        start.containerID = "noprog"
        #expect(code { _ = try client.startContainer(start) } == .invalidArgument)
        try client.remove("noprog")

        // Two containers with one id: the second is refused.
        create.containerID = "twice"
        create.ociSpecJson = try ContainerFixture.spec(rootfs: rootfs, process: ContainerFixture.process(["true"]))
        _ = try client.createContainer(create)
        #expect(code { _ = try client.createContainer(create) } == .alreadyExists)
        try client.remove("twice")

        // CopyFile outside the state directory is refused; inside it lands intact.
        var copy = Grpc_CopyFileRequest()
        copy.path = "/etc/kata-agent-test-should-not-exist"
        copy.data = Data("x".utf8)
        copy.fileSize = 1
        #expect(code { _ = try client.copyFile(copy) } == .invalidArgument)
        copy.path = agent.stateDirectory + "/shared/etc/hosts"
        copy.data = Data("127.0.0.1 localhost\n".utf8)
        copy.fileSize = Int64(copy.data.count)
        copy.fileMode = 0o644
        _ = try client.copyFile(copy)
        #expect(FileManager.default.contents(atPath: copy.path) == copy.data)
        // Offsets and sizes at the edge of Int64 are refused, not overflowed.
        copy.offset = Int64.max
        #expect(code { _ = try client.copyFile(copy) } == .invalidArgument)
        copy.offset = 0
        copy.fileSize = Int64.max
        copy.data = Data()
        #expect(code { _ = try client.copyFile(copy) } != nil)
        // A route destination without an address is an error, not a crash.
        var routes = Grpc_UpdateRoutesRequest()
        var route = Grpc_Route()
        route.dest = "/"
        routes.routes.routes = [route]
        #expect(code { _ = try client.updateRoutes(routes) } != nil)

        #expect(try client.check().status == .serving)
    }

    /// A client that opens connections without end gets the extra ones closed; the agent
    /// serves again once some are released.
    @Test func connectionsBeyondTheCapAreClosed() throws {
        let agent = try AgentHarness()
        defer { agent.stop() }
        func healthCheck(_ raw: RawConnection) throws -> Bool {
            var check = Ttrpc_Request()
            check.service = AgentServiceName.health
            check.method = "Check"
            check.payload = try Grpc_CheckRequest().serializedData()
            // A closed connection fails the send (EPIPE) or the read (end of stream).
            guard (try? raw.channel.writeFrame(TTRPCFrame(streamID: 1, type: .request, payload: try check.serializedBytes()))) != nil,
                  let frame = try? raw.channel.readFrame() else { return false }
            return (try? Ttrpc_Response(serializedBytes: frame.payload))?.status.code == 0
        }
        // The harness's own client holds one connection.
        var held: [RawConnection] = []
        for _ in 0..<127 {
            let raw = try RawConnection(path: agent.socketPath)
            #expect(try healthCheck(raw))
            held.append(raw)
        }
        let refused = try RawConnection(path: agent.socketPath)
        #expect(try !healthCheck(refused), "connection 129 should be closed by the agent")
        held.removeLast(10)
        var served = false
        for _ in 0..<50 where !served {
            served = (try? healthCheck(try RawConnection(path: agent.socketPath))) ?? false
            if !served { usleep(100_000) }
        }
        #expect(served)
    }

    @Test func malformedFramesDoNotStopTheAgent() throws {
        let agent = try AgentHarness()
        defer { agent.stop() }

        // A payload that is not a ttrpc Request: INVALID_ARGUMENT on its stream.
        let raw = try RawConnection(path: agent.socketPath)
        try raw.channel.writeAll(TTRPCFrame.header(length: 5, streamID: 1, type: 1, flags: 0) + [0xff, 0xff, 0xff, 0xff, 0xff])
        var reply = try raw.response()
        #expect(reply.streamID == 1)
        #expect(reply.response.status.code == RPCCode.invalidArgument.rawValue)

        // A frame of the wrong type: INVALID_ARGUMENT.
        try raw.channel.writeFrame(TTRPCFrame(streamID: 3, type: .response, payload: []))
        reply = try raw.response()
        #expect(reply.streamID == 3 && reply.response.status.code == RPCCode.invalidArgument.rawValue)

        // An oversized frame (5 MiB > 4 MiB): skipped without buffering, answered
        // RESOURCE_EXHAUSTED, and the same connection goes on working.
        let oversized = 5 << 20
        try raw.channel.writeAll(TTRPCFrame.header(length: UInt32(oversized), streamID: 5, type: 1, flags: 0))
        try raw.channel.writeAll([UInt8](repeating: 0x41, count: oversized))
        reply = try raw.response()
        #expect(reply.streamID == 5 && reply.response.status.code == RPCCode.resourceExhausted.rawValue)
        var check = Ttrpc_Request()
        check.service = AgentServiceName.health
        check.method = "Check"
        check.payload = try Grpc_CheckRequest().serializedData()
        try raw.channel.writeFrame(TTRPCFrame(streamID: 7, type: .request, payload: try check.serializedBytes()))
        reply = try raw.response()
        #expect(reply.streamID == 7 && reply.response.status.code == 0)
        #expect(try Grpc_HealthCheckResponse(serializedBytes: reply.response.payload).status == .serving)

        // A truncated frame (header announces 100 bytes, 10 arrive, then EOF): the
        // agent drops that connection only.
        let truncated = try RawConnection(path: agent.socketPath)
        try truncated.channel.writeAll(TTRPCFrame.header(length: 100, streamID: 1, type: 1, flags: 0) + [UInt8](repeating: 0, count: 10))
        truncated.channel.shutdownBoth()
        // A header cut short: same.
        let short = try RawConnection(path: agent.socketPath)
        try short.channel.writeAll([0, 0, 0])
        short.channel.shutdownBoth()

        #expect(try agent.client.check().status == .serving)
        #expect(try agent.connect().version().agentVersion == AgentProtocolVersion.agentVersion)
    }
}

/// A plain Unix socket connection speaking raw frames.
struct RawConnection {
    let channel: FrameChannel

    init(path: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, result == 0 else { throw Fixtures.FixtureError("connect \(path): errno \(errno)") }
        channel = FrameChannel(fd: fd)
    }

    func response() throws -> (streamID: UInt32, response: Ttrpc_Response) {
        guard let frame = try channel.readFrame() else { throw Fixtures.FixtureError("connection closed") }
        #expect(frame.type == TTRPCFrame.MessageType.response.rawValue)
        return (frame.streamID, try Ttrpc_Response(serializedBytes: frame.payload))
    }
}
