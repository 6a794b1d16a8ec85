import AgentProtocol
import FuzzSupport
import Foundation
import Glibc
import SwiftProtobuf

// A ttrpc byte stream as the agent (or the runtime) reads it from its socket: frames
// through FrameChannel, their payloads as Ttrpc_Request / Ttrpc_Response, and the inner
// payload as the agent's message the method names (or, for unknown names, every message
// of the protocol). Every message that decodes must survive an encode/decode round trip.

/// Every message of agent.proto and health.proto.
let messages: [any SwiftProtobuf.Message.Type] = [Grpc_AgentDetails.self, Grpc_CgroupStats.self, Grpc_CheckRequest.self, Grpc_CloseStdinRequest.self, Grpc_CopyFileRequest.self, Grpc_CpuUsage.self, Grpc_CreateContainerRequest.self, Grpc_CreateSandboxRequest.self, Grpc_DestroySandboxRequest.self, Grpc_Empty.self, Grpc_ExecProcessRequest.self, Grpc_GuestDetailsRequest.self, Grpc_GuestDetailsResponse.self, Grpc_HealthCheckResponse.self, Grpc_IPAddress.self, Grpc_Interface.self, Grpc_ListProcessesRequest.self, Grpc_ListProcessesResponse.self, Grpc_MemoryStats.self, Grpc_PauseContainerRequest.self, Grpc_PidsStats.self, Grpc_ReadStreamRequest.self, Grpc_ReadStreamResponse.self, Grpc_RemoveContainerRequest.self, Grpc_ResumeContainerRequest.self, Grpc_Route.self, Grpc_Routes.self, Grpc_SignalProcessRequest.self, Grpc_StartContainerRequest.self, Grpc_StatsContainerRequest.self, Grpc_StatsContainerResponse.self, Grpc_Storage.self, Grpc_TtyWinResizeRequest.self, Grpc_UpdateContainerRequest.self, Grpc_UpdateInterfaceRequest.self, Grpc_UpdateRoutesRequest.self, Grpc_VersionCheckResponse.self, Grpc_WaitProcessRequest.self, Grpc_WaitProcessResponse.self, Grpc_WriteStreamRequest.self, Grpc_WriteStreamResponse.self, ]
let byName: [String: any SwiftProtobuf.Message.Type] = Dictionary(
    uniqueKeysWithValues: messages.map { ($0.protoMessageName, $0) })

func decodeRoundTrip(_ type: any SwiftProtobuf.Message.Type, _ bytes: [UInt8]) {
    guard let message = try? type.init(serializedBytes: bytes) else { return }
    let encoded: [UInt8] = try! message.serializedBytes()
    let again = try! type.init(serializedBytes: encoded)
    precondition(again.isEqualTo(message: message), "\(type.protoMessageName) changed in a round trip")
}

func decodeInner(method: String, _ payload: [UInt8]) {
    if let type = byName["grpc.\(method)Request"] {
        decodeRoundTrip(type, payload)
    } else {
        for type in messages { decodeRoundTrip(type, payload) }
    }
}

@_cdecl("fuzz_ttrpc_main")
public func fuzzMain(_ argc: Int32, _ argv: FuzzArguments) -> Int32 { runFuzzer(argc, argv, fuzzOneInput) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = FuzzInput(data, size).bytes.prefix(60_000)  // below a pipe's capacity
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { fatalError("pipe: \(String(cString: strerror(errno)))") }
    let channel = FrameChannel(fd: fds[0])
    Array(bytes).withUnsafeBytes { raw in _ = write(fds[1], raw.baseAddress, raw.count) }
    close(fds[1])
    while true {
        let frame: TTRPCFrame?
        do {
            frame = try channel.readFrame()
        } catch .oversized {
            continue
        } catch {
            break
        }
        guard let frame else { break }
        precondition(frame.payload.count <= TTRPCFrame.maxPayload)
        if let request = try? Ttrpc_Request(serializedBytes: frame.payload) {
            decodeInner(method: request.method, Array(request.payload))
        }
        if let response = try? Ttrpc_Response(serializedBytes: frame.payload) {
            for type in messages { decodeRoundTrip(type, Array(response.payload)) }
        }
    }
    return 0
}
