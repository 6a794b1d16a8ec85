import Devices
import FuzzSupport

// virtio-balloon's queues as a hostile driver works them, through the transport (see
// VirtioRig, after a first byte whose bit 0 says whether a STOP is acknowledged): inflate and deflate PFN arrays, the statistics buffer, free page reports and
// free page hints, in any chain layout. After the first round the host starts a hinting
// run and writes its command id in the last 4 bytes of guest RAM, so that the second round's hints can
// name the current run and reach the path that gives their blocks back.

let balloon = try! VirtioBalloon(VirtioBalloon.Config(amountMiB: 1, deflateOnOom: true, statsPollingIntervalS: 1,
                                                      freePageReporting: true, freePageHinting: true),
                                 logger: quietLogger())
let rig = try! VirtioRig(device: balloon)

@_cdecl("fuzz_balloon_main")
public func fuzzMain(_ argc: Int32, _ argv: FuzzArguments) -> Int32 { runFuzzer(argc, argv, fuzzOneInput) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let acknowledge = input.u8() & 1 == 0
    var round = 0
    rig.run(&input) {
        round += 1
        guard round == 1 else { return }
        balloon.startHinting(acknowledgeOnStop: acknowledge)
        try? rig.memory.store(balloon.hintingStatus.hostCommand, at: VirtioRig.memorySize - 4)
    }
    precondition(balloon.counters.hintedBytes <= UInt64.max / 2)
    return 0
}
