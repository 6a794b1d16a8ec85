import Devices
import VMM

/// Everything needed to build one microVM. A value type: the CLI flags, the config file and
/// the HTTP API all produce one of these, and `validate()` is the single place that judges it.
public struct VmConfig: Sendable, Equatable {
    /// Where the guest's serial console goes.
    public enum SerialOutput: Sendable, Equatable {
        case stdio
        case file(String)
        case none
    }

    public static let defaultCmdline = "console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd"
    public static let maxVcpus = 32
    public static let minMemoryMiB = 4
    public static let maxMemoryMiB = 1 << 20  // 1 TiB

    public var kernelPath: String
    public var initrdPath: String?
    public var cmdline: String
    public var vcpuCount: Int
    public var memoryMiB: Int
    public var serial: SerialOutput
    /// The cap on a `.file` console log before it is rotated to `<file>.1`; 0: no cap.
    public var serialLogMaxBytes = VmConfig.defaultSerialLogMaxBytes
    public static let defaultSerialLogMaxBytes = ConsoleLog.defaultMaxBytes
    /// nil: the kernel's preferred entry (64-bit Linux boot protocol, else PVH).
    public var bootProtocol: BootProtocol?
    public var disks: [DiskConfig] = []
    public var nets: [NetConfig] = []
    public var vsock: VsockConfig?
    /// virtio-fs devices; any of them makes guest RAM shared memory (memfd) that the
    /// backends map.
    public var fs: [FsConfig] = []
    /// Guest RAM from the host's 2 MiB huge-page pool (Firecracker's `huge_pages: "2M"`),
    /// which is also shareable with vhost-user backends.
    public var hugePages = false
    /// Guest RAM in transparent huge pages where the host can (Firecracker's
    /// `huge_pages: "Transparent"`: MADV_HUGEPAGE on the mapping).
    public var transparentHugePages = false
    /// Firecracker's `track_dirty_pages`: KVM logs the pages the guest writes and the VMM
    /// marks those it writes, for diff snapshots (`MicroVM.takeDirtyPages`).
    public var trackDirtyPages = false
    /// Two threads per core (Firecracker's `smt`); the vCPU count is then 1 or even.
    public var smt = false
    public var rng = false
    /// The entropy device's `rate_limiter`.
    public var rngRateLimiter: RateLimiterConfig = .unlimited
    /// A virtio-balloon device (Firecracker's `balloon`); nil: none.
    public var balloon: VirtioBalloon.Config?
    /// Firecracker's `mmds-config`: the interfaces whose guest traffic to the MMDS address
    /// the metadata service answers; nil: no interface reaches it.
    public var mmds: MmdsConfig?
    public var virtioDiscovery: VirtioDiscovery = .acpi
    /// Where the VMM's own log goes and how much of it (Firecracker's `logger`); nil: stderr.
    public var logger: LogConfig?
    /// Where metrics are flushed as JSON lines (Firecracker's `metrics`); nil: no metrics.
    public var metricsPath: String?

    /// The VMM log's destination and level.
    public struct LogConfig: Sendable, Equatable {
        public enum Level: String, Sendable, CaseIterable {
            case off = "Off", error = "Error", warning = "Warning", info = "Info", debug = "Debug", trace = "Trace"
        }
        /// nil: stderr.
        public var path: String?
        public var level: Level
        public var showLevel: Bool
        public var showOrigin: Bool
        /// Firecracker's `module` filter: only lines from this module of ours (`Devices`,
        /// `VMM`, `Machine`, `API`, `kata_vmm`), or from one file of it (`Devices::VirtioNet`).
        public var module: String?

        /// The modules of kata-vmm that log.
        public static let modules = ["kata_vmm", "API", "Machine", "Devices", "VMM"]

        /// Why `module` is not one of ours (`Module` or `Module::File`), or nil. A Firecracker
        /// module path (`api_server::request`) would match nothing: refused, not a silent log.
        public static func moduleError(_ module: String) -> String? {
            let parts = module.split(separator: "::", omittingEmptySubsequences: false).map(String.init)
            let fileName = parts.count == 2 && !parts[1].isEmpty && parts[1].utf8.count <= 128
                && parts[1].utf8.allSatisfy { $0 == UInt8(ascii: "_") || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
            guard modules.contains(parts[0]), parts.count == 1 || fileName else {
                return "'\(module)' is not a kata-vmm module (\(modules.joined(separator: ", ")), or one of its files as Devices::VirtioNet"
            }
            return nil
        }

        public init(path: String? = nil, level: Level = .info, showLevel: Bool = false, showOrigin: Bool = false) {
            self.path = path
            self.level = level
            self.showLevel = showLevel
            self.showOrigin = showOrigin
        }
    }

    /// The command line the kernel gets: `cmdline`, plus `root=` for the root disk the way
    /// Firecracker adds it (`root=/dev/vda` or `root=PARTUUID=...`, then `ro` or `rw`).
    public var kernelCmdline: String {
        guard let root = disks.first(where: \.isRootDevice) else { return cmdline }
        let device = root.partuuid.map { "PARTUUID=\($0)" } ?? "/dev/vda"
        return cmdline + " root=\(device) " + (root.readOnly ? "ro" : "rw")
    }

    /// How the guest finds its virtio-mmio devices.
    public enum VirtioDiscovery: String, Sendable, CaseIterable {
        /// One LNRO0005 device per slot in the DSDT: needs no kernel option, works with
        /// kernels built without VIRTIO_MMIO_CMDLINE_DEVICES (Debian's cloud kernel).
        case acpi
        /// `virtio_mmio.device=<size>@<addr>:<irq>` on the kernel command line, as
        /// Firecracker does. The IRQ is an ISA interrupt number, which a kernel maps only
        /// through the MP table (boot it with `acpi=off`): on a hardware-reduced ACPI
        /// platform Linux maps no interrupt that ACPI does not describe.
        case cmdline
    }

    /// Most virtio-mmio devices: one per free IOAPIC pin from 5 to 23.
    public static let maxVirtioDevices = 19

    /// Each disk's serial: its `id`, or "disk<N>".
    public var diskIds: [String] { disks.enumerated().map { $1.id ?? "disk\($0)" } }

    /// Each virtio-fs device's id (the API's `fs_id`): its `id`, or "fs<N>".
    public var fsIds: [String] { fs.enumerated().map { $1.id ?? "fs\($0)" } }

    public init(kernelPath: String, initrdPath: String? = nil, cmdline: String = VmConfig.defaultCmdline,
                vcpuCount: Int = 1, memoryMiB: Int = 128, serial: SerialOutput = .stdio,
                bootProtocol: BootProtocol? = nil) {
        self.kernelPath = kernelPath
        self.initrdPath = initrdPath
        self.cmdline = cmdline
        self.vcpuCount = vcpuCount
        self.memoryMiB = memoryMiB
        self.serial = serial
        self.bootProtocol = bootProtocol
    }

    public enum ValidationError: Error, CustomStringConvertible, Equatable {
        case vcpuCount(Int, hostMax: Int)
        case memory(Int)
        case tooManyDevices(Int)
        case duplicateDiskId(String)
        case duplicateTap(String)
        case rootDevice(String)
        case fs(String)
        case hugePages(Int)
        case balloon(String)
        case smt(Int)
        case mmds(String)
        case dirtyPages

        public var description: String {
            switch self {
            case .vcpuCount(let n, let hostMax):
                return "invalid vCPU count \(n): must be between 1 and \(min(VmConfig.maxVcpus, hostMax))"
                    + (hostMax < VmConfig.maxVcpus ? " (KVM on this host allows \(hostMax))" : "")
            case .memory(let mib):
                return "invalid memory size \(mib) MiB: must be between \(VmConfig.minMemoryMiB) and \(VmConfig.maxMemoryMiB) MiB"
            case .tooManyDevices(let n):
                return "too many virtio devices (\(n)): at most \(VmConfig.maxVirtioDevices)"
            case .duplicateDiskId(let id):
                return "two disks have the id '\(id)'"
            case .duplicateTap(let tap):
                return "two network interfaces use the tap '\(tap)'"
            case .rootDevice(let why):
                return why
            case .fs(let why):
                return why
            case .hugePages(let mib):
                return "mem_size_mib \(mib) is not a whole number of 2 MiB huge pages"
            case .balloon(let why):
                return why
            case .dirtyPages:
                return "dirty pages are tracked only with track_dirty_pages"
            case .mmds(let why):
                return "mmds-config: \(why)"
            case .smt(let n):
                return "invalid vCPU count \(n) with SMT: must be 1 or an even number"
            }
        }
    }

    /// Checks the values that do not need the kernel image; `hostMaxVcpus` comes from KVM.
    public func validate(hostMaxVcpus: Int = VmConfig.maxVcpus) throws {
        guard vcpuCount >= 1, vcpuCount <= min(Self.maxVcpus, hostMaxVcpus) else {
            throw ValidationError.vcpuCount(vcpuCount, hostMax: hostMaxVcpus)
        }
        guard memoryMiB >= Self.minMemoryMiB, memoryMiB <= Self.maxMemoryMiB else {
            throw ValidationError.memory(memoryMiB)
        }
        if hugePages && memoryMiB % 2 != 0 { throw ValidationError.hugePages(memoryMiB) }
        if smt && vcpuCount > 1 && vcpuCount % 2 != 0 { throw ValidationError.smt(vcpuCount) }
        let deviceCount = disks.count + nets.count + fs.count + (vsock == nil ? 0 : 1) + (rng ? 1 : 0) + (balloon == nil ? 0 : 1)
        guard deviceCount <= Self.maxVirtioDevices else { throw ValidationError.tooManyDevices(deviceCount) }
        var seen = Set<String>()
        for id in diskIds where !seen.insert(id).inserted { throw ValidationError.duplicateDiskId(id) }
        let roots = disks.indices.filter { disks[$0].isRootDevice }
        if roots.count > 1 { throw ValidationError.rootDevice("only one disk can be the root device") }
        if let root = roots.first, root != 0 { throw ValidationError.rootDevice("the root device must be the first disk (/dev/vda)") }
        var taps = Set<String>()
        for net in nets where !taps.insert(net.tap).inserted { throw ValidationError.duplicateTap(net.tap) }
        var tags = Set<String>()
        for device in fs {
            if let problem = device.problem { throw ValidationError.fs("virtio-fs '\(device.tag)': \(problem)") }
            guard tags.insert(device.tag).inserted else { throw ValidationError.fs("two virtio-fs devices have the tag '\(device.tag)'") }
        }
        if balloon != nil && hugePages {
            // A 4 KiB page cannot be given back from a 2 MiB one, and a reported 2 MiB range
            // would hand the reservation back to the pool (a later touch: SIGBUS).
            throw ValidationError.balloon("a balloon cannot be used with huge_pages 2M (as in Firecracker)")
        }
        if let balloon, Int(balloon.amountMiB) > memoryMiB {
            throw ValidationError.balloon("the balloon's amount_mib (\(balloon.amountMiB)) is more than the VM's memory (\(memoryMiB) MiB)")
        }
        if let mmds {
            guard !mmds.networkInterfaces.isEmpty else { throw ValidationError.mmds("network_interfaces must name at least one interface") }
            for id in mmds.networkInterfaces where !nets.contains(where: { ($0.id ?? $0.tap) == id }) {
                throw ValidationError.mmds("no network interface '\(id)'")
            }
        }
        if trackDirtyPages && !fs.isEmpty {
            // virtiofsd writes guest RAM itself, where neither KVM nor the VMM sees it.
            throw ValidationError.fs("track_dirty_pages cannot see what a vhost-user backend (virtio-fs) writes into guest memory")
        }
        var fsIdsSeen = Set<String>()
        for id in fsIds where !fsIdsSeen.insert(id).inserted { throw ValidationError.fs("two virtio-fs devices have the id '\(id)'") }
    }

    /// Guest RAM must be a shared mapping of a memfd when a vhost-user backend maps it.
    public var needsSharedMemory: Bool { !fs.isEmpty }

    /// How guest RAM is backed: huge pages when asked for (shared as well), else a memfd
    /// when a backend maps it, else private anonymous memory.
    public var memoryBacking: GuestMemoryBacking {
        hugePages ? .hugePages : needsSharedMemory ? .sharedMemfd : .anonymous
    }
}
