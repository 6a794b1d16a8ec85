import Foundation
import FuzzSupport
import Machine
@testable import API

// The --config-file JSON. A configuration that parses must come back unchanged through
// GET /vm/config's description: what the VMM reports is a config file it accepts.

@_cdecl("fuzz_config_file_main")
public func fuzzMain(_ argc: Int32, _ argv: FuzzArguments) -> Int32 { runFuzzer(argc, argv, fuzzOneInput) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = FuzzInput(data, size).bytes
    guard let config = try? FullVmConfiguration.parse(Data(bytes)) else { return 0 }
    let described = FullVmConfiguration.describe(config).serialized
    let again: VmConfig
    do {
        again = try FullVmConfiguration.parse(Data(described.utf8))
    } catch {
        preconditionFailure("the description of an accepted config is refused: \(error)\n\(described)")
    }
    precondition(again == config, "the config changed through its description:\n\(described)")
    return 0
}
