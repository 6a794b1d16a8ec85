import Devices
import FuzzSupport
import VMM

// The split virtqueue and descriptor-chain parser over guest RAM in two regions with a
// hole between them (chains that straddle it must be refused). Input:
//   u16 queue size, u64 descriptor table, u64 available ring, u64 used ring,
//   u8 ring features (bit 0 event index, bit 1 indirect), u16 head for a direct parse,
//   then guest RAM: the first 32 KiB at 0, the next 32 KiB at 64 KiB.
// The queue is used only if `activate` accepts its geometry, as the transport does; the
// direct DescriptorChain parse takes any table address and size.

let regionSize: UInt64 = 32 << 10
let memory = try! GuestMemory(ranges: [(guestAddress: 0, size: regionSize), (guestAddress: 2 * regionSize, size: regionSize)])
let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 17, alignment: 16)

@_cdecl("fuzz_virtqueue_main")
public func fuzzMain(_ argc: Int32, _ argv: FuzzArguments) -> Int32 { runFuzzer(argc, argv, fuzzOneInput) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let queue = VirtQueue(maxSize: 256)
    queue.size = input.u16()
    queue.descriptorTable = input.u64()
    queue.availableRing = input.u64()
    queue.usedRing = input.u64()
    let ringFeatures = input.u8()
    let directHead = input.u16()
    for region in memory.regions {
        try! memory.zero(at: region.guestAddress, length: Int(region.size))
        try! memory.write(input.take(Int(region.size)), at: region.guestAddress)
    }

    _ = try? DescriptorChain(memory: memory, table: queue.descriptorTable, size: queue.size, head: directHead,
                             indirectAllowed: ringFeatures & 2 != 0)

    queue.ready = true
    var features: UInt64 = 0
    if ringFeatures & 1 != 0 { features |= VirtioFeature.ringEventIndex }
    if ringFeatures & 2 != 0 { features |= VirtioFeature.ringIndirectDescriptors }
    guard queue.activate(features: features, memory: memory) else { return 0 }
    queue.beginPass()
    // At most a queue's worth of chains, so that a ring the input keeps full ends.
    for round in 0..<Int(queue.size) + 1 {
        guard let chain = try? queue.nextChain(memory, badChain: { _ in }) else { break }
        var reader = chain.reader(memory)
        _ = reader.read(UInt32.self)
        _ = reader.read(into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<min(scratch.count, reader.remaining)]))
        var writer = chain.writer(memory)
        writer.write(UnsafeRawBufferPointer(rebasing: scratch[0..<min(scratch.count, chain.writableLength)]))
        if round == 1 && ringFeatures & 4 != 0 {
            queue.unpop()
            continue
        }
        guard (try? queue.addUsed(memory, head: chain.head, length: UInt32(writer.written))) != nil else { break }
        _ = queue.needsInterrupt(memory)
    }
    _ = queue.hasAvailable(memory)
    return 0
}
