#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import AgentProtocol
import CAgentSpawn
import FoundationEssentials

/// Accepts connections on the listening socket and serves ttrpc on each: one reader
/// thread per connection, one thread per request (several requests of one connection
/// block independently, e.g. ReadStdout while a WaitProcess is pending). A connection
/// that sends garbage is answered (or dropped, for a truncated frame); the others are
/// never affected.
final class AgentServer: @unchecked Sendable {  // `connectionCount` under `connections` (Monitor); the rest is `let`
    /// Requests in flight on one connection; more are answered RESOURCE_EXHAUSTED.
    static let maxInFlightPerConnection = 256
    /// Connections served at once; more are closed at accept. The runtime holds a few
    /// (the monitor, one shim per process, a command); a client that leaks connections
    /// must not exhaust the guest's threads and memory.
    static let maxConnections = 128

    private let connections = Monitor()
    private var connectionCount = 0

    private let router: RPCRouter
    private let log: AgentLog

    init(router: RPCRouter, log: AgentLog) {
        self.router = router
        self.log = log
    }

    /// Serves until accept fails for good.
    func serve(listener: Int32) -> Never {
        while true {
            let fd = agent_accept_cloexec(listener)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM {
                    if errno != EINTR && errno != ECONNABORTED { usleep(10_000) }
                    continue
                }
                AgentLog.fatal("accept on the agent socket: \(String(cString: strerror(errno)))")
            }
            let admitted = connections.locked { () -> Bool in
                guard connectionCount < AgentServer.maxConnections else { return false }
                connectionCount += 1
                return true
            }
            guard admitted else {
                log.error("\(AgentServer.maxConnections) connections open: closing a new one")
                close(fd)
                continue
            }
            let channel = FrameChannel(fd: fd)
            do {
                try DetachedThread.start { [self] in
                    self.serveConnection(channel)
                    connections.locked { connectionCount -= 1 }
                }
            } catch {
                connections.locked { connectionCount -= 1 }
                log.error("cannot serve a connection: \(error)")
            }
        }
    }

    private func serveConnection(_ channel: FrameChannel) {
        let inFlight = Monitor()
        var count = 0
        while true {
            let frame: TTRPCFrame
            do {
                guard let next = try channel.readFrame() else { return }
                frame = next
            } catch .oversized(let stream, let length) {
                log.error("oversized frame (\(length) bytes) on stream \(stream)")
                respond(channel, stream: stream, status: RPCError(.resourceExhausted, "message length \(length) exceeds maximum message size of \(TTRPCFrame.maxPayload)"), payload: [])
                continue
            } catch {
                log.error("connection dropped: \(error)")
                return
            }
            guard frame.type == TTRPCFrame.MessageType.request.rawValue else {
                respond(channel, stream: frame.streamID, status: RPCError(.invalidArgument, "frame type \(frame.type) is not a request"), payload: [])
                continue
            }
            let request: Ttrpc_Request
            do {
                request = try Ttrpc_Request(serializedBytes: frame.payload)
            } catch {
                respond(channel, stream: frame.streamID, status: RPCError(.invalidArgument, "undecodable ttrpc request: \(error)"), payload: [])
                continue
            }
            let admitted = inFlight.locked { () -> Bool in
                guard count < AgentServer.maxInFlightPerConnection else { return false }
                count += 1
                return true
            }
            guard admitted else {
                respond(channel, stream: frame.streamID, status: RPCError(.resourceExhausted, "too many requests in flight"), payload: [])
                continue
            }
            let stream = frame.streamID
            do {
                try DetachedThread.start { [self] in
                    self.run(request, stream: stream, on: channel)
                    inFlight.locked { count -= 1 }
                }
            } catch {
                inFlight.locked { count -= 1 }
                respond(channel, stream: stream, status: RPCError(.resourceExhausted, "\(error)"), payload: [])
            }
        }
    }

    private func run(_ request: Ttrpc_Request, stream: UInt32, on channel: FrameChannel) {
        switch router.handle(service: request.service, method: request.method, payload: Array(request.payload)) {
        case .success(let payload):
            respond(channel, stream: stream, status: nil, payload: payload)
        case .failure(let error):
            log.debug("\(request.method): \(error)")
            respond(channel, stream: stream, status: error, payload: [])
        }
    }

    private func respond(_ channel: FrameChannel, stream: UInt32, status: RPCError?, payload: [UInt8]) {
        var response = Ttrpc_Response()
        response.status = Ttrpc_Status()
        if let status {
            response.status.code = status.code
            response.status.message = status.message
        }
        response.payload = Data(payload)
        do {
            let bytes: [UInt8] = try response.serializedBytes()
            try channel.writeFrame(TTRPCFrame(streamID: stream, type: .response, payload: bytes))
        } catch {
            log.debug("cannot send the response on stream \(stream): \(error)")
        }
    }
}
