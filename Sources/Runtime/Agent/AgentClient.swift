#if canImport(Glibc)
import Glibc
#endif
import AgentProtocol
import SwiftProtobuf
import Synchronization
import LinuxSupport

/// The runtime's connection to one guest agent (ttrpc over a Unix or hybrid vsock socket).
///
/// API: every RPC of `grpc.AgentService` and `grpc.Health` is one synchronous throwing
/// method taking the typed request message and returning the typed response message; the
/// caller's thread blocks until the answer (the runtime's commands and its shim are
/// short-lived and thread-per-stream). Calls may be in flight at once from any number of
/// threads: each gets its own ttrpc stream id on the one connection and waits on its own
/// `ResponseWaiter`, and one reader thread hands every response to its caller (so a
/// blocking `readStdout` does not hold up a `signalProcess`). A call fails with
/// `AgentClientError.rpc` carrying the agent's ttrpc status (code and message), with
/// `.connectionClosed` once the connection is gone, or with `.timedOut` when a timeout
/// was given and passed (the timeout also travels to the agent as `timeout_nano`; a
/// response arriving after it is dropped).
public final class AgentClient: Sendable {
    private let channel: FrameChannel
    private let state = Mutex(State())
    /// Default timeout for calls that do not pass their own; nil waits indefinitely.
    public let defaultTimeout: Duration?
    /// How many attempts opening the connection took (`AgentDialPolicy`).
    public let dialAttempts: Int

    private struct State {
        var nextStream: UInt32 = 1
        var pending: [UInt32: ResponseWaiter] = [:]
        var closedReason: String?
    }

    /// Connects to the agent at `endpoint` and starts the response reader.
    public convenience init(connectingTo endpoint: AgentEndpoint, defaultTimeout: Duration? = nil,
                            dial: AgentDialPolicy = .standard) throws(AgentClientError) {
        let (fd, attempts) = try endpoint.connect(dial)
        self.init(socket: fd, defaultTimeout: defaultTimeout, dialAttempts: attempts)
    }

    /// Takes over a connected stream socket (closed when the client goes away).
    public init(socket fd: Int32, defaultTimeout: Duration? = nil, dialAttempts: Int = 1) {
        channel = FrameChannel(fd: fd)
        self.defaultTimeout = defaultTimeout
        self.dialAttempts = dialAttempts
        let reader = ResponseReader(client: self)
        reader.start()
    }

    deinit {
        channel.shutdownBoth()
    }

    /// Ends the connection; pending calls fail with `.connectionClosed`.
    public func close() {
        channel.shutdownBoth()
    }

    // MARK: grpc.Health

    public func check(_ request: Grpc_CheckRequest = .init(), timeout: Duration? = nil) throws -> Grpc_HealthCheckResponse {
        try call(AgentServiceName.health, "Check", request, timeout: timeout)
    }

    public func version(_ request: Grpc_CheckRequest = .init(), timeout: Duration? = nil) throws -> Grpc_VersionCheckResponse {
        try call(AgentServiceName.health, "Version", request, timeout: timeout)
    }

    // MARK: grpc.AgentService

    public func createSandbox(_ request: Grpc_CreateSandboxRequest, timeout: Duration? = nil) throws -> Grpc_Empty {
        try call(AgentServiceName.agent, "CreateSandbox", request, timeout: timeout)
    }

    public func destroySandbox(_ request: Grpc_DestroySandboxRequest = .init(), timeout: Duration? = nil) throws -> Grpc_Empty {
        try call(AgentServiceName.agent, "DestroySandbox", request, timeout: timeout)
    }

    public func createContainer(_ request: Grpc_CreateContainerRequest, timeout: Duration? = nil) throws -> Grpc_Empty {
        try call(AgentServiceName.agent, "CreateContainer", request, timeout: timeout)
    }

    public func startContainer(_ request: Grpc_StartContainerRequest, timeout: Duration? = nil) throws -> Grpc_Empty {
        try call(AgentServiceName.agent, "StartContainer", request, timeout: timeout)
    }

    public func removeContainer(_ request: Grpc_RemoveContainerRequest, timeout: Duration? = nil) throws -> Grpc_Empty {
        try call(AgentServiceName.agent, "RemoveContainer", request, timeout: timeout)
    }

    public func execProcess(_ request: Grpc_ExecProcessRequest, timeout: Duration? = nil) throws -> Grpc_Empty {
        try call(AgentServiceName.agent, "ExecProcess", request, timeout: timeout)
    }

    public func signalProcess(_ request: Grpc_SignalProcessRequest, timeout: Duration? = nil) throws -> Grpc_Empty {
        try call(AgentServiceName.agent, "SignalProcess", request, timeout: timeout)
    }

    public func pauseContainer(_ request: Grpc_PauseContainerRequest, timeout: Duration? = nil) throws -> Grpc_Empty {
        try call(AgentServiceName.agent, "PauseContainer", request, timeout: timeout)
    }

    public func updateContainer(_ request: Grpc_UpdateContainerRequest, timeout: Duration? = nil) throws -> Grpc_Empty {
        try call(AgentServiceName.agent, "UpdateContainer", request, timeout: timeout)
    }

    public func resumeContainer(_ request: Grpc_ResumeContainerRequest, timeout: Duration? = nil) throws -> Grpc_Empty {
        try call(AgentServiceName.agent, "ResumeContainer", request, timeout: timeout)
    }

    public func waitProcess(_ request: Grpc_WaitProcessRequest, timeout: Duration? = nil) throws -> Grpc_WaitProcessResponse {
        try call(AgentServiceName.agent, "WaitProcess", request, timeout: timeout)
    }

    public func writeStdin(_ request: Grpc_WriteStreamRequest, timeout: Duration? = nil) throws -> Grpc_WriteStreamResponse {
        try call(AgentServiceName.agent, "WriteStdin", request, timeout: timeout)
    }

    /// Blocks in the agent until data is available; empty `data` means end of stream.
    public func readStdout(_ request: Grpc_ReadStreamRequest, timeout: Duration? = nil) throws -> Grpc_ReadStreamResponse {
        try call(AgentServiceName.agent, "ReadStdout", request, timeout: timeout)
    }

    /// Blocks in the agent until data is available; empty `data` means end of stream.
    public func readStderr(_ request: Grpc_ReadStreamRequest, timeout: Duration? = nil) throws -> Grpc_ReadStreamResponse {
        try call(AgentServiceName.agent, "ReadStderr", request, timeout: timeout)
    }

    public func closeStdin(_ request: Grpc_CloseStdinRequest, timeout: Duration? = nil) throws -> Grpc_Empty {
        try call(AgentServiceName.agent, "CloseStdin", request, timeout: timeout)
    }

    public func ttyWinResize(_ request: Grpc_TtyWinResizeRequest, timeout: Duration? = nil) throws -> Grpc_Empty {
        try call(AgentServiceName.agent, "TtyWinResize", request, timeout: timeout)
    }

    public func updateInterface(_ request: Grpc_UpdateInterfaceRequest, timeout: Duration? = nil) throws -> Grpc_Interface {
        try call(AgentServiceName.agent, "UpdateInterface", request, timeout: timeout)
    }

    public func updateRoutes(_ request: Grpc_UpdateRoutesRequest, timeout: Duration? = nil) throws -> Grpc_Routes {
        try call(AgentServiceName.agent, "UpdateRoutes", request, timeout: timeout)
    }

    public func listProcesses(_ request: Grpc_ListProcessesRequest, timeout: Duration? = nil) throws -> Grpc_ListProcessesResponse {
        try call(AgentServiceName.agent, "ListProcesses", request, timeout: timeout)
    }

    public func statsContainer(_ request: Grpc_StatsContainerRequest, timeout: Duration? = nil) throws -> Grpc_StatsContainerResponse {
        try call(AgentServiceName.agent, "StatsContainer", request, timeout: timeout)
    }

    public func copyFile(_ request: Grpc_CopyFileRequest, timeout: Duration? = nil) throws -> Grpc_Empty {
        try call(AgentServiceName.agent, "CopyFile", request, timeout: timeout)
    }

    public func getGuestDetails(_ request: Grpc_GuestDetailsRequest = .init(), timeout: Duration? = nil) throws -> Grpc_GuestDetailsResponse {
        try call(AgentServiceName.agent, "GetGuestDetails", request, timeout: timeout)
    }

    // MARK: Generic call

    /// One unary ttrpc call: `service`/`method` with `request`, decoding the response
    /// payload as `Response`. The per-RPC methods above are the API; this is public for
    /// tests and for methods an agent may add later.
    public func call<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ service: String, _ method: String, _ request: Request, timeout: Duration? = nil
    ) throws -> Response {
        let limit = timeout ?? defaultTimeout
        var envelope = Ttrpc_Request()
        envelope.service = service
        envelope.method = method
        envelope.payload = try request.serializedBytes()
        if let limit {
            let (seconds, attoseconds) = limit.components
            envelope.timeoutNano = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        }
        let bytes: [UInt8] = try envelope.serializedBytes()
        let waiter = ResponseWaiter()
        let stream = try state.withLock { state throws(AgentClientError) -> UInt32 in
            if let reason = state.closedReason { throw .connectionClosed(reason) }
            let id = state.nextStream
            state.nextStream &+= 2
            state.pending[id] = waiter
            return id
        }
        let deadline = limit.map(ResponseWaiter.deadline(after:))
        do {
            try channel.writeFrame(TTRPCFrame(streamID: stream, type: .request, payload: bytes))
        } catch {
            fail(stream: stream, with: .connectionClosed("\(error)"))
        }
        let response = try waitForOutcome(of: waiter, stream: stream, until: deadline, method: "\(service)/\(method)").get()
        if response.hasStatus && response.status.code != 0 {
            throw AgentClientError.rpc(RPCError(code: response.status.code, message: response.status.message))
        }
        do {
            return try Response(serializedBytes: response.payload)
        } catch {
            throw AgentClientError.protocolViolation("\(method) response payload: \(error) (\(undecodable(response.payload)))")
        }
    }

    /// Blocks until `waiter` is resolved or `deadline` passes. A call that times out takes
    /// its pending entry away, so that a late response finds no one and is dropped; when
    /// the reader took it first, its outcome is on the way and is the call's.
    private func waitForOutcome(of waiter: ResponseWaiter, stream: UInt32, until deadline: timespec?, method: String) -> ResponseWaiter.Outcome {
        if let outcome = waiter.wait(until: deadline) { return outcome }
        let stillPending = state.withLock { $0.pending.removeValue(forKey: stream) } != nil
        if stillPending { return .failure(.timedOut(method: method)) }
        return waiter.wait(until: nil)!
    }

    private func fail(stream: UInt32, with error: AgentClientError) {
        let waiter = state.withLock { $0.pending.removeValue(forKey: stream) }
        waiter?.resolve(.failure(error))
    }

    fileprivate func deliver(_ frame: TTRPCFrame) {
        guard frame.type == TTRPCFrame.MessageType.response.rawValue else { return }
        let waiter = state.withLock { $0.pending.removeValue(forKey: frame.streamID) }
        guard let waiter else { return }  // timed out already, or an unknown stream
        do {
            waiter.resolve(.success(try Ttrpc_Response(serializedBytes: frame.payload)))
        } catch {
            waiter.resolve(.failure(.protocolViolation("undecodable ttrpc response: \(error) (\(undecodable(frame.payload)))")))
        }
    }

    fileprivate func failOversized(stream: UInt32, length: UInt32) {
        fail(stream: stream, with: .protocolViolation("response of \(length) bytes exceeds the \(TTRPCFrame.maxPayload)-byte limit"))
    }

    fileprivate func connectionEnded(_ reason: String) {
        let pending = state.withLock { state -> [ResponseWaiter] in
            state.closedReason = state.closedReason ?? reason
            let all = Array(state.pending.values)
            state.pending.removeAll()
            return all
        }
        for waiter in pending { waiter.resolve(.failure(.connectionClosed(reason))) }
    }

    fileprivate var frameChannel: FrameChannel { channel }
}

/// The thread that reads response frames for one `AgentClient`. It holds the client
/// weakly (so that dropping the client closes the connection) and the channel strongly.
// @unchecked: its two stored properties are set in init and only read after; `client` is
// a weak reference, which Swift loads and clears atomically.
private final class ResponseReader: @unchecked Sendable {  // set in init, only read after; `client` is weak (loaded atomically)
    weak var client: AgentClient?
    let channel: FrameChannel

    init(client: AgentClient) {
        self.client = client
        self.channel = client.frameChannel
    }

    func start() {
        do {
            try PosixThread.start(detached: true, stackSize: 256 << 10) { [self] in run() }
        } catch {
            client?.connectionEnded("cannot start the reader thread (\(error))")
        }
    }

    private func run() {
        while true {
            do {
                guard let frame = try channel.readFrame() else {
                    client?.connectionEnded("end of stream")
                    return
                }
                guard let client else { return }
                client.deliver(frame)
            } catch .oversized(let stream, let length) {
                // Skipped without buffering; only that call fails.
                client?.failOversized(stream: stream, length: length)
            } catch {
                client?.connectionEnded("\(error)")
                return
            }
        }
    }
}

/// What an undecodable message looked like, bounded: its length, its first bytes and how
/// many were NUL. Enough to tell a corrupted transfer (runs of zeros) from a peer that
/// speaks something else.
private func undecodable<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
    let head = bytes.prefix(24).map { byte in
        let hex = String(byte, radix: 16)
        return byte < 16 ? "0" + hex : hex
    }.joined()
    return "\(bytes.count) bytes, \(bytes.lazy.filter { $0 == 0 }.count) NUL, starting \(head)"
}
