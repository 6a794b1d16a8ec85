import Devices
import FuzzSupport
import Glibc

// virtio-blk requests (header, data, status in any split; every request type; sectors
// past the end) through the transport, against a real 64 KiB image file made once.

let imagePath = ScratchDirectory.file("disk.img")
let rig: VirtioRig = {
    let fd = open(imagePath, O_CREAT | O_RDWR | O_TRUNC, 0o600)
    precondition(fd >= 0 && ftruncate(fd, 64 << 10) == 0, "cannot make \(imagePath)")
    close(fd)
    let backend = try! BlockBackend(path: imagePath, readOnly: false, direct: false)
    return try! VirtioRig(device: VirtioBlock(backend: backend, serial: "fuzz", engine: .sync, logger: quietLogger()))
}()

@_cdecl("fuzz_blk_main")
public func fuzzMain(_ argc: Int32, _ argv: FuzzArguments) -> Int32 { runFuzzer(argc, argv, fuzzOneInput) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 { rig.runSession(data, size) }
