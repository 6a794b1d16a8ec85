import Devices
import FuzzSupport

// virtio-rng requests through the transport: any chain layout, any lengths (see VirtioRig).

let rig = try! VirtioRig(device: try! VirtioRng(logger: quietLogger()))

@_cdecl("fuzz_rng_main")
public func fuzzMain(_ argc: Int32, _ argv: FuzzArguments) -> Int32 { runFuzzer(argc, argv, fuzzOneInput) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 { rig.runSession(data, size) }
