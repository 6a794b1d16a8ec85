import Dispatch
import Foundation
import FuzzSupport
@testable import API

// The API as a caller drives it: a session of requests (separated by NUL bytes, each
// "METHOD URI\n" then the body) against a fresh VmController, so that one request's
// accepted state feeds the next (PUT a drive, then PUT it again, then read the config).
// Requests that would touch the host beyond the controller (PUT /logger and /metrics
// open files, actions boot a VM) have their bodies parsed by the same section parsers
// without being applied.

func send(_ controller: VmController, _ request: ApiRequest) -> ApiResponse {
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var response: ApiResponse?
    controller.handle(request) { answer in
        response = answer
        done.signal()
    }
    done.wait()
    return response!
}

/// Parses what PUT /logger, /metrics and /actions carry, applying nothing.
func parseOnly(_ endpoint: ApiEndpoint, _ body: [UInt8]) {
    guard let json = try? JSONValue.parse(Data(body)) else { return }
    switch endpoint {
    case .putLogger: _ = try? LoggerSection(json, path: "")
    case .putMetrics: _ = try? MetricsSection(json, path: "")
    default: _ = try? StrictObject(json, path: "", allowed: ["action_type"]).choice("action_type", ["InstanceStart"])
    }
}

@_cdecl("fuzz_api_main")
public func fuzzMain(_ argc: Int32, _ argv: FuzzArguments) -> Int32 { runFuzzer(argc, argv, fuzzOneInput) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let controller = VmController(identity: .init(vmmVersion: "fuzz"), logger: quietLogger())
    for chunk in FuzzInput(data, size).bytes.split(separator: 0, omittingEmptySubsequences: true).prefix(16) {
        let newline = chunk.firstIndex(of: UInt8(ascii: "\n")) ?? chunk.endIndex
        let line = String(decoding: chunk[..<newline], as: UTF8.self)
        let body = Array(chunk[newline...].dropFirst())
        let parts = line.split(separator: " ", maxSplits: 1)
        let request = ApiRequest(method: parts.first.map(String.init) ?? "", uri: parts.count > 1 ? String(parts[1]) : "",
                                 body: body)
        switch try? ApiEndpoint.route(method: request.method, uri: request.uri) {
        case .putLogger?, .putMetrics?, .putActions?:
            parseOnly(try! ApiEndpoint.route(method: request.method, uri: request.uri), body)
        default:
            let response = send(controller, request)
            precondition((200..<600).contains(response.status), "status \(response.status)")
            if let text = response.body {
                precondition((try? JSONValue.parse(Data(text.utf8))) != nil, "the API answered invalid JSON: \(text)")
            }
        }
    }
    return 0
}
