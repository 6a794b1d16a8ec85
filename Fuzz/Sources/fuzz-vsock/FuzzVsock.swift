import Devices
import FuzzSupport
import VMM

// virtio-vsock packets from the guest's TX queue (any op, port, length, credit; headers
// split across descriptors), answered on the RX queue, through the transport. The device
// listens on a real Unix socket; guest connections to host ports find no listener and are
// reset, so no host socket outlives an input.

let loop = try! EventLoop()
let rig = try! VirtioRig(device: VirtioVsock(guestCid: 3, udsPath: ScratchDirectory.file("v.sock"), loop: loop,
                                             logger: quietLogger()))

@_cdecl("fuzz_vsock_main")
public func fuzzMain(_ argc: Int32, _ argv: FuzzArguments) -> Int32 { runFuzzer(argc, argv, fuzzOneInput) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    rig.run(&input, rounds: 3) { loop.runOnce(timeoutMs: 0) }
    return 0
}
