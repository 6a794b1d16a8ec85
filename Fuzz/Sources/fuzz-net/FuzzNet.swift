import Devices
import FuzzSupport
import Glibc
import VMM

// virtio-net TX and RX through the transport, over a real tap (needs /dev/net/tun and
// CAP_NET_ADMIN). TX chains go out of the tap whatever their layout; RX buffers wait for
// frames. The interface is down, so the host stack sends nothing back.

let loop = try! EventLoop()
let rig: VirtioRig = {
    let tap: Tap
    do {
        tap = try Tap(name: "kfuzz\(getpid() % 100_000)")
    } catch {
        fatalError("fuzz-net needs a tap: \(error)")
    }
    return try! VirtioRig(device: VirtioNet(tap: tap, mac: [2, 0, 0, 0, 0, 1], loop: loop, logger: quietLogger()))
}()

@_cdecl("fuzz_net_main")
public func fuzzMain(_ argc: Int32, _ argv: FuzzArguments) -> Int32 { runFuzzer(argc, argv, fuzzOneInput) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    rig.run(&input) { loop.runOnce(timeoutMs: 0) }
    return 0
}
