import CKVM
import CLinux

/// A flat x86 segment as both the GDT (8-byte descriptor) and KVM (`kvm_segment`) see it,
/// so the descriptor table in guest memory and the hidden segment registers agree.
public struct SegmentDescriptor: Equatable, Sendable {
    public var selector: UInt16
    public var base: UInt32
    /// 20-bit limit in units of the granularity.
    public var limit: UInt32
    public var type: UInt8
    public var system: Bool
    public var dpl: UInt8 = 0
    public var present = true
    public var long = false
    public var defaultSize32 = false
    public var granularity4K = false

    /// Linux boot protocol selectors: __BOOT_CS = 0x10, __BOOT_DS = 0x18; the TSS follows.
    public static let codeSelector: UInt16 = 0x10
    public static let dataSelector: UInt16 = 0x18
    public static let tssSelector: UInt16 = 0x20

    public static let code64 = SegmentDescriptor(selector: codeSelector, base: 0, limit: 0xFFFFF, type: 0xB,
                                                 system: false, long: true, granularity4K: true)
    public static let code32 = SegmentDescriptor(selector: codeSelector, base: 0, limit: 0xFFFFF, type: 0xB,
                                                 system: false, defaultSize32: true, granularity4K: true)
    public static let data = SegmentDescriptor(selector: dataSelector, base: 0, limit: 0xFFFFF, type: 0x3,
                                               system: false, defaultSize32: true, granularity4K: true)
    /// A busy 32/64-bit TSS of the minimum size (104 bytes), as the PVH ABI asks for.
    public static let tss = SegmentDescriptor(selector: tssSelector, base: 0, limit: 0x67, type: 0xB, system: true)

    /// The 8-byte GDT descriptor.
    public var descriptor: UInt64 {
        let access = UInt64(type & 0xF) | (system ? 0 : 0x10) | UInt64(dpl & 3) << 5 | (present ? 0x80 : 0)
        let flags = (long ? 0x2 : 0) | (defaultSize32 ? 0x4 : 0) | (granularity4K ? 0x8 : 0) as UInt64
        return UInt64(limit & 0xFFFF)
            | UInt64(base & 0xFF_FFFF) << 16
            | access << 40
            | UInt64((limit >> 16) & 0xF) << 48
            | flags << 52
            | UInt64(base >> 24) << 56
    }

    /// The hidden part of the segment register as KVM_SET_SREGS takes it.
    public var kvmSegment: kvm_segment {
        var segment = kvm_segment()
        segment.base = UInt64(base)
        segment.limit = granularity4K ? (limit << 12) | 0xFFF : limit
        segment.selector = selector
        segment.type = type
        segment.present = present ? 1 : 0
        segment.dpl = dpl
        segment.db = defaultSize32 ? 1 : 0
        segment.s = system ? 0 : 1
        segment.l = long ? 1 : 0
        segment.g = granularity4K ? 1 : 0
        return segment
    }

    /// The boot GDT: null, null, code (0x10), data (0x18), and the 16-byte TSS slot (0x20).
    public static func gdt(code: SegmentDescriptor) -> [UInt64] {
        [0, 0, code.descriptor, data.descriptor, tss.descriptor, 0]
    }
}
