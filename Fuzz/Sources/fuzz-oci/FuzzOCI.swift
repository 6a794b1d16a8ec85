import Foundation
import FuzzSupport
import Runtime

// The OCI spec as both sides decode it: the runtime's config.json reader (decode, then
// the checks a bundle's spec must pass) and the agent's OCISpec / OCIProcess /
// OCIResources from CreateContainer, ExecProcess and UpdateContainer (compiled in from
// guest/agent; see Package.swift).

@_cdecl("fuzz_oci_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc, argv, fuzzOneInput)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = FuzzInput(data, size).bytes
    if let spec = try? OCIBundle.decode(Data(bytes), file: "config.json") {
        _ = try? OCIBundle.validate(spec, file: "config.json")
    }
    _ = try? OCISpec.decode(bytes)
    _ = try? OCIProcess.decode(bytes)
    _ = try? OCIResources.decode(bytes)
    return 0
}
