import Devices
import VMM

/// A virtio device behind its real virtio-mmio transport over a small guest RAM, driven
/// as a hostile driver would. One input is one driver session:
///
///     u64 features (masked to what the device offers, VERSION_1 forced so it activates)
///     per queue: u16 size, u32 descriptor table, u32 available ring, u32 used ring
///     the rest: guest RAM from address 0 (descriptors, rings, buffers), at most 64 KiB
///
/// then `rounds` doorbells on every queue. Each session starts with a device reset, so
/// nothing but the device's own state carries over between inputs.
public final class VirtioRig {
    public static let memorySize: UInt64 = 64 << 10
    static let statusRegister: UInt64 = 0x070

    public let device: any VirtioDevice
    public let memory: GuestMemory
    public let transport: VirtioMmioTransport

    public init(device: any VirtioDevice) throws {
        self.device = device
        memory = try GuestMemory(ranges: [(guestAddress: 0, size: Self.memorySize)])
        let interrupt = VirtioInterrupt(eventFd: try EventFd())
        transport = try VirtioMmioTransport(device: device, memory: memory, interrupt: interrupt, logger: quietLogger())
    }

    public func read32(_ offset: UInt64) -> UInt32 {
        var value: UInt32 = 0
        withUnsafeMutableBytes(of: &value) { transport.read(offset: offset, data: $0) }
        return UInt32(littleEndian: value)
    }

    public func write32(_ offset: UInt64, _ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { transport.write(offset: offset, data: $0) }
    }

    /// Resets the device and clears guest RAM.
    public func reset() {
        write32(Self.statusRegister, 0)
        try! memory.zero(at: 0, length: Int(Self.memorySize))
    }

    /// One libFuzzer input as one driver session: what a rig target's LLVMFuzzerTestOneInput does.
    public func runSession(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
        var input = FuzzInput(data, size)
        run(&input)
        return 0
    }

    /// One driver session (see the type's comment); returns whether the device went live.
    @discardableResult
    public func run(_ input: inout FuzzInput, rounds: Int = 2, afterRound: () -> Void = {}) -> Bool {
        reset()
        write32(Self.statusRegister, VirtioStatus.acknowledge | VirtioStatus.driver)
        let features = (input.u64() & device.offeredFeatures) | VirtioFeature.version1
        for half in 0..<2 {
            write32(0x024, UInt32(half))
            write32(0x020, UInt32(truncatingIfNeeded: features >> (32 * UInt64(half))))
        }
        write32(Self.statusRegister, VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOk)
        for queue in device.queueMaxSizes.indices {
            write32(0x030, UInt32(queue))
            write32(0x038, UInt32(input.u16()))
            write32(0x080, input.u32())
            write32(0x090, input.u32())
            write32(0x0A0, input.u32())
            write32(0x044, 1)
        }
        let image = input.rest().prefix(Int(Self.memorySize))
        try! memory.write(Array(image), at: 0)
        write32(Self.statusRegister, read32(Self.statusRegister) | VirtioStatus.driverOk)
        guard transport.isActive else { return false }
        for _ in 0..<rounds {
            for queue in device.queueMaxSizes.indices { transport.notified(queue: queue) }
            afterRound()
        }
        return true
    }
}
