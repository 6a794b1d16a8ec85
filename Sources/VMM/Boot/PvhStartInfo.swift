/// `struct hvm_start_info` (Xen's arch-x86/hvm/start_info.h, version 1) and the tables it
/// points to: what a PVH kernel reads from EBX on entry.
public struct PvhStartInfo {
    public static let magic: UInt32 = 0x336E_C578
    public static let size = 56
    public static let memoryMapEntrySize = 24
    public static let moduleEntrySize = 32

    public var cmdlineAddress: UInt64 = 0
    public var rsdpAddress: UInt64 = 0
    public var modules: [(address: UInt64, size: UInt64)] = []
    public var memoryMap: E820Map

    public init(memoryMap: E820Map) {
        self.memoryMap = memoryMap
    }

    /// The start_info structure itself, pointing at the module list and memory map addresses.
    public func startInfoBytes(moduleListAddress: UInt64, memoryMapAddress: UInt64) -> [UInt8] {
        var w = ByteWriter(size: Self.size)
        w.u32(Self.magic, at: 0)
        w.u32(1, at: 4)  // version
        w.u32(0, at: 8)  // flags
        w.u32(UInt32(modules.count), at: 12)
        w.u64(modules.isEmpty ? 0 : moduleListAddress, at: 16)
        w.u64(cmdlineAddress, at: 24)
        w.u64(rsdpAddress, at: 32)
        w.u64(memoryMapAddress, at: 40)
        w.u32(UInt32(memoryMap.entries.count), at: 48)
        return w.bytes
    }

    public var moduleListBytes: [UInt8] {
        var w = ByteWriter(size: modules.count * Self.moduleEntrySize)
        for (i, module) in modules.enumerated() {
            w.u64(module.address, at: i * Self.moduleEntrySize)
            w.u64(module.size, at: i * Self.moduleEntrySize + 8)
        }
        return w.bytes
    }

    public var memoryMapBytes: [UInt8] {
        var w = ByteWriter(size: memoryMap.entries.count * Self.memoryMapEntrySize)
        for (i, entry) in memoryMap.entries.enumerated() {
            let at = i * Self.memoryMapEntrySize
            w.u64(entry.address, at: at)
            w.u64(entry.size, at: at + 8)
            w.u32(entry.kind.rawValue, at: at + 16)
        }
        return w.bytes
    }
}
