import CKVM
import CLinux

/// One CPUID leaf/subleaf as KVM describes it (`struct kvm_cpuid_entry2`), as a value type
/// so that the per-vCPU adjustments are pure functions that unit tests can check.
public struct CpuidEntry: Equatable, Sendable, CustomStringConvertible {
    public var function: UInt32
    public var index: UInt32
    public var flags: UInt32
    public var eax: UInt32
    public var ebx: UInt32
    public var ecx: UInt32
    public var edx: UInt32

    /// KVM_CPUID_FLAG_SIGNIFCANT_INDEX: the subleaf (ECX input) selects this entry.
    public static let significantIndex: UInt32 = 1

    public init(function: UInt32, index: UInt32 = 0, flags: UInt32 = 0,
                eax: UInt32 = 0, ebx: UInt32 = 0, ecx: UInt32 = 0, edx: UInt32 = 0) {
        self.function = function
        self.index = index
        self.flags = flags
        self.eax = eax
        self.ebx = ebx
        self.ecx = ecx
        self.edx = edx
    }

    init(_ raw: kvm_cpuid_entry2) {
        self.init(function: raw.function, index: raw.index, flags: raw.flags,
                  eax: raw.eax, ebx: raw.ebx, ecx: raw.ecx, edx: raw.edx)
    }

    var raw: kvm_cpuid_entry2 {
        var entry = kvm_cpuid_entry2()
        entry.function = function
        entry.index = index
        entry.flags = flags
        entry.eax = eax
        entry.ebx = ebx
        entry.ecx = ecx
        entry.edx = edx
        return entry
    }

    public var description: String {
        func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16) }
        return "leaf \(hex(function)).\(index): eax=\(hex(eax)) ebx=\(hex(ebx)) ecx=\(hex(ecx)) edx=\(hex(edx))"
    }
}

/// Marshals `[CpuidEntry]` to and from the kernel's variable-length `struct kvm_cpuid2`.
enum CpuidTable {
    static func withBuffer<R>(capacity: Int, _ body: (UnsafeMutablePointer<kvm_cpuid2>) throws -> R) rethrows -> R {
        let bytes = MemoryLayout<kvm_cpuid2>.size + capacity * MemoryLayout<kvm_cpuid_entry2>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 8)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        let table = raw.bindMemory(to: kvm_cpuid2.self, capacity: 1)
        table.pointee.nent = UInt32(capacity)
        return try body(table)
    }

    static func entries(of table: UnsafeMutablePointer<kvm_cpuid2>) -> [CpuidEntry] {
        let base = UnsafeMutableRawPointer(table) + MemoryLayout<kvm_cpuid2>.size
        let entries = base.bindMemory(to: kvm_cpuid_entry2.self, capacity: Int(table.pointee.nent))
        return (0..<Int(table.pointee.nent)).map { CpuidEntry(entries[$0]) }
    }

    static func withTable<R>(_ entries: [CpuidEntry], _ body: (UnsafeMutablePointer<kvm_cpuid2>) throws -> R) rethrows -> R {
        try withBuffer(capacity: entries.count) { table in
            let base = UnsafeMutableRawPointer(table) + MemoryLayout<kvm_cpuid2>.size
            let raw = base.bindMemory(to: kvm_cpuid_entry2.self, capacity: entries.count)
            for (i, entry) in entries.enumerated() { raw[i] = entry.raw }
            return try body(table)
        }
    }
}
