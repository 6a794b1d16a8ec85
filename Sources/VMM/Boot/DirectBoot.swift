/// Why the boot inputs cannot be laid out in guest memory.
public enum DirectBootError: Error, CustomStringConvertible, Equatable {
    case cmdlineTooLong(length: Int, max: Int)
    case cmdlineContainsNul
    case initrdDoesNotFit(size: UInt64, available: UInt64)
    case protocolUnsupported(BootProtocol, LoadedKernel.Format)

    public var description: String {
        switch self {
        case .cmdlineTooLong(let length, let max):
            return "kernel command line is \(length) bytes; this kernel accepts at most \(max)"
        case .cmdlineContainsNul:
            return "kernel command line contains a NUL byte"
        case .initrdDoesNotFit(let size, let available):
            return "guest memory too small: the initrd needs \(size) bytes but only \(available) are free between the kernel and the initrd limit"
        case .protocolUnsupported(let proto, let format):
            switch proto {
            case .pvh: return "this \(format.rawValue) kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)"
            case .linux64: return "this \(format.rawValue) kernel has no 64-bit Linux boot protocol entry"
            }
        }
    }
}

/// Direct kernel boot: loads the kernel and initrd, writes the command line, memory map,
/// zero page or PVH start info, page tables, GDT, MP table and ACPI tables, and returns
/// the state the vCPUs start in. No firmware runs.
public struct DirectBoot {
    public var kernel: [UInt8]
    public var initrd: [UInt8]?
    public var cmdline: String
    public var vcpuCount: Int
    /// nil: the image's preferred protocol (64-bit entry, else PVH).
    public var bootProtocol: BootProtocol?
    /// virtio-mmio devices the ACPI tables describe.
    public var acpiVirtioSlots: [VirtioMmioSlot]

    public init(kernel: [UInt8], initrd: [UInt8]? = nil, cmdline: String, vcpuCount: Int,
                bootProtocol: BootProtocol? = nil, acpiVirtioSlots: [VirtioMmioSlot] = []) {
        self.kernel = kernel
        self.initrd = initrd
        self.cmdline = cmdline
        self.vcpuCount = vcpuCount
        self.bootProtocol = bootProtocol
        self.acpiVirtioSlots = acpiVirtioSlots
    }

    /// What was placed where; the VMM logs it and tests check it.
    public struct Result: Sendable, Equatable {
        public var kernel: LoadedKernel
        public var bootProtocol: BootProtocol
        public var entry: UInt64
        public var initrdAddress: UInt64?
        public var memoryMap: E820Map
    }

    public func load(into memory: GuestMemory) throws -> Result {
        let loaded = try KernelImage.load(kernel, into: memory)
        guard let chosen = bootProtocol ?? loaded.supportedProtocols.first else {
            throw KernelImageError.unsupported("no entry point this VMM can use")
        }
        let entry: UInt64
        switch chosen {
        case .linux64:
            guard let e = loaded.linux64Entry else { throw DirectBootError.protocolUnsupported(.linux64, loaded.format) }
            entry = e
        case .pvh:
            guard let e = loaded.pvhEntry else { throw DirectBootError.protocolUnsupported(.pvh, loaded.format) }
            entry = UInt64(e)
        }

        let map = E820Map(memory: memory)
        let cmdlineBytes = Array(cmdline.utf8)
        guard !cmdlineBytes.contains(0) else { throw DirectBootError.cmdlineContainsNul }
        let maxLength = min(loaded.cmdlineMaxLength, Int(X86MemoryLayout.cmdlineMaxSize) - 1)
        guard cmdlineBytes.count <= maxLength else {
            throw DirectBootError.cmdlineTooLong(length: cmdlineBytes.count, max: maxLength)
        }
        try memory.write(cmdlineBytes + [0], at: X86MemoryLayout.cmdlineAddress)

        var initrdAddress: UInt64?
        if let initrd {
            initrdAddress = try place(initrd: initrd, kernel: loaded, map: map, memory: memory)
        }

        try writeGdt(code: chosen == .linux64 ? .code64 : .code32, memory: memory)
        try memory.zero(at: X86MemoryLayout.idtAddress, length: 8)
        let mpTable = MpTable.build(vcpuCount: vcpuCount)
        guard mpTable.count <= MpTable.maxSize else {
            throw GuestMemoryError.outOfBounds(address: X86MemoryLayout.mpTableAddress, length: mpTable.count)
        }
        try memory.write(mpTable, at: X86MemoryLayout.mpTableAddress)
        for piece in AcpiTables(vcpuCount: vcpuCount, virtioSlots: acpiVirtioSlots).build() {
            try memory.write(piece.bytes, at: piece.address)
        }

        switch chosen {
        case .linux64:
            for page in PageTables.build() { try memory.write(page.bytes, at: page.address) }
            var params = BootParams(setupHeader: loaded.setupHeader)
            params.setCmdline(address: X86MemoryLayout.cmdlineAddress, length: cmdlineBytes.count)
            if let initrdAddress, let initrd { params.setRamdisk(address: initrdAddress, size: UInt64(initrd.count)) }
            params.setAcpiRsdp(X86MemoryLayout.rsdpAddress)
            params.setE820(map)
            try memory.write(params.bytes, at: X86MemoryLayout.zeroPageAddress)
        case .pvh:
            var info = PvhStartInfo(memoryMap: map)
            info.cmdlineAddress = X86MemoryLayout.cmdlineAddress
            info.rsdpAddress = X86MemoryLayout.rsdpAddress
            if let initrdAddress, let initrd { info.modules = [(initrdAddress, UInt64(initrd.count))] }
            try memory.write(info.startInfoBytes(moduleListAddress: X86MemoryLayout.pvhModuleListAddress,
                                                 memoryMapAddress: X86MemoryLayout.pvhMemoryMapAddress),
                             at: X86MemoryLayout.pvhStartInfoAddress)
            try memory.write(info.moduleListBytes, at: X86MemoryLayout.pvhModuleListAddress)
            guard map.entries.count <= X86MemoryLayout.pvhMaxMemoryMapEntries else {
                throw GuestMemoryError.outOfBounds(address: X86MemoryLayout.pvhMemoryMapAddress, length: map.entries.count)
            }
            try memory.write(info.memoryMapBytes, at: X86MemoryLayout.pvhMemoryMapAddress)
        }
        return Result(kernel: loaded, bootProtocol: chosen, entry: entry, initrdAddress: initrdAddress, memoryMap: map)
    }

    /// Places the initrd as high as the kernel allows (below initrd_addr_max and the top of
    /// low RAM), page aligned, and above the kernel's footprint.
    func place(initrd: [UInt8], kernel: LoadedKernel, map: E820Map, memory: GuestMemory) throws -> UInt64 {
        let size = UInt64(initrd.count)
        let limit = min(kernel.initrdAddressMax &+ 1, map.lowRamEnd)
        let floor = (kernel.loadEnd + 0xFFF) & ~0xFFF
        guard limit > floor, size <= limit - floor else {
            throw DirectBootError.initrdDoesNotFit(size: size, available: limit > floor ? limit - floor : 0)
        }
        let address = (limit - size) & ~0xFFF
        try memory.write(initrd, at: address)
        return address
    }

    func writeGdt(code: SegmentDescriptor, memory: GuestMemory) throws {
        for (i, descriptor) in SegmentDescriptor.gdt(code: code).enumerated() {
            try memory.store(descriptor, at: X86MemoryLayout.gdtAddress + UInt64(i * 8))
        }
    }
}
