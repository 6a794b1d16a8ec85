import FuzzSupport
import VMM

// The kernel loaders (ELF64/ELF32 with PVH notes, bzImage) over a 16 MiB guest RAM at 0:
// any header, segment table, note or setup size. What loads must lie inside guest RAM.

let memory = try! GuestMemory(ranges: [(guestAddress: 0, size: 16 << 20)])

@_cdecl("fuzz_kernel_main")
public func fuzzMain(_ argc: Int32, _ argv: FuzzArguments) -> Int32 { runFuzzer(argc, argv, fuzzOneInput) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let kernel = try? KernelImage.load(FuzzInput(data, size).bytes, into: memory) else { return 0 }
    precondition(kernel.loadStart <= kernel.loadEnd, "load range \(kernel.loadStart)..\(kernel.loadEnd) is backwards")
    return 0
}
