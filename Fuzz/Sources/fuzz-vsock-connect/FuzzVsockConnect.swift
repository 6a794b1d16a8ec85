import FuzzSupport
import HybridVsock

// The hybrid vsock's `CONNECT <port>\n` line, as a host client sends it: whole, or cut
// anywhere (a prefix the parser calls incomplete must never be refused once completed
// the same way the full line was accepted).

@_cdecl("fuzz_vsock_connect_main")
public func fuzzMain(_ argc: Int32, _ argv: FuzzArguments) -> Int32 { runFuzzer(argc, argv, fuzzOneInput) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = FuzzInput(data, size).bytes
    let whole = HybridVsockLine.parseConnect(bytes)
    if case .line(let port, let length) = whole {
        precondition(length <= bytes.count && bytes[length - 1] == UInt8(ascii: "\n"), "line length \(length) is wrong")
        precondition(HybridVsockLine.parseConnect(Array(bytes[..<length])) == .line(port: port, length: length))
        for cut in 0..<length - 1 {
            precondition(HybridVsockLine.parseConnect(Array(bytes[..<cut])) == .incomplete,
                         "prefix of \(cut) bytes of an accepted line is not incomplete")
        }
    }
    return 0
}
