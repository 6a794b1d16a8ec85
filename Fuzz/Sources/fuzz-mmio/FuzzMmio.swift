import Devices
import FuzzSupport
import Glibc
import VMM

// Register sequences on the virtio-mmio transport interleaved with backend events, on a
// virtio-blk device with the Linux AIO engine (completions arrive on an eventfd, served
// by the event loop between register accesses). Each input starts from a device reset;
// it is a list of 7-byte operations: u8 kind, u16 offset, u32 value.
//   kind 0: read a register        1: write a register     2: write Status
//   kind 3: ring a doorbell (QueueNotify) and run the loop   4: run the loop
//   kind 5: store a word in guest RAM (rings changing under the device)
//   kind 6: read config space (1..8 bytes)   7: write config space
//   kind 8: configuration change (disk swapped by the host)

let loop = try! EventLoop()
let imagePath = ScratchDirectory.file("mmio-disk.img")
let rig: VirtioRig = {
    let fd = open(imagePath, O_CREAT | O_RDWR | O_TRUNC, 0o600)
    precondition(fd >= 0 && ftruncate(fd, 64 << 10) == 0, "cannot make \(imagePath)")
    close(fd)
    let backend = try! BlockBackend(path: imagePath, readOnly: false, direct: false)
    let rig = try! VirtioRig(device: VirtioBlock(backend: backend, serial: "fuzz", engine: .aio, logger: quietLogger()))
    try! rig.transport.attach(to: loop)
    return rig
}()

@_cdecl("fuzz_mmio_main")
public func fuzzMain(_ argc: Int32, _ argv: FuzzArguments) -> Int32 { runFuzzer(argc, argv, fuzzOneInput) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    rig.reset()
    var scratch = [UInt8](repeating: 0, count: 8)
    for _ in 0..<256 where !input.isAtEnd {
        let kind = input.u8() % 9
        let offset = UInt64(input.u16())
        let value = input.u32()
        switch kind {
        case 0: _ = rig.read32(offset % VirtioMmioTransport.windowSize)
        case 1: rig.write32(offset % VirtioMmioTransport.windowSize, value)
        case 2: rig.write32(0x070, value)
        case 3:
            rig.write32(VirtioMmioTransport.queueNotifyOffset, value % 4)
            loop.runOnce(timeoutMs: 0)
        case 4: loop.runOnce(timeoutMs: Int32(value % 2))
        case 5: try! rig.memory.store(value, at: (offset * 4) % VirtioRig.memorySize)
        case 6:
            scratch.withUnsafeMutableBytes { raw in
                rig.transport.read(offset: 0x100 + offset % 0x40,
                                   data: UnsafeMutableRawBufferPointer(rebasing: raw[0..<Int(1 + value % 8)]))
            }
        case 7:
            withUnsafeBytes(of: UInt64(value) | UInt64(value) << 32) { raw in
                rig.transport.write(offset: 0x100 + offset % 0x40, data: UnsafeRawBufferPointer(rebasing: raw[0..<Int(1 + value % 8)]))
            }
        default: rig.transport.configurationChanged()
        }
    }
    return 0
}
