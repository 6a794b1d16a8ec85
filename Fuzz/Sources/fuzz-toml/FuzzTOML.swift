import FuzzSupport
import Runtime

// The runtime's configuration.toml: TOML syntax (TOMLKit over toml++) and the runtime's
// own reading of its tables, keys and value ranges.

@_cdecl("fuzz_toml_main")
public func fuzzMain(_ argc: Int32, _ argv: FuzzArguments) -> Int32 { runFuzzer(argc, argv, fuzzOneInput) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = String(decoding: FuzzInput(data, size).bytes, as: UTF8.self)
    _ = try? RuntimeConfiguration.parse(text)
    return 0
}
