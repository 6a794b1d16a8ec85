import Foundation
import Devices
import Glibc
import HostInput
import Machine
import TOMLKit

/// `configuration.toml`, Kata's file: the guest kernel and image, the VM's size, the agent
/// connection and the runtime's own options. A value type; `load` finds the file
/// (`--config`, `$KATA_CONF_FILE`, Kata's two system paths, else the built-in defaults) and
/// `parse` judges every key: a bad value of a key we implement is an error naming it, a key
/// we do not implement a warning naming it.
public struct RuntimeConfiguration: Sendable, Equatable {
    public struct Hypervisor: Sendable, Equatable {
        public var kernel = "/usr/share/kata-swift/vmlinux"
        public var initrd: String? = "/usr/share/kata-swift/kata-agent-initramfs.cpio"
        public var kernelParams = ""
        public var defaultVcpus = 1
        /// 0: as many as the host has.
        public var defaultMaxVcpus = 0
        /// MiB.
        public var defaultMemory = 2048
        public var blockDeviceDriver = "virtio-mmio"
        public var disableBlockDeviceUse = false
        public var enableDebug = false
        /// The cap on console.log before it is rotated to console.log.1; 0: no cap.
        public var consoleLogMaxBytes = VmConfig.defaultSerialLogMaxBytes
        /// How the rootfs and host directories reach the guest: virtio-fs (a virtiofsd per
        /// sandbox), or none (the rootfs as an ext4 copy on virtio-blk, directory binds
        /// dropped with a warning). Unset: virtio-fs when the daemon exists (Kata's default).
        public var sharedFs: SharedFs?
        public var resolvedSharedFs: SharedFs {
            sharedFs ?? (access(virtioFsDaemon, X_OK) == 0 ? .virtioFs : .none)
        }
        /// Debian's virtiofsd (qemu-system-common); Kata's own is /opt/kata/libexec/virtiofsd.
        public var virtioFsDaemon = "/usr/lib/qemu/virtiofsd"
        /// virtiofsd's cache mode: auto (Kata's default), always, or none (Kata's "never").
        public var virtioFsCache = "auto"
        public var virtioFsExtraArgs: [String] = []
        /// Guest RAM from the host's 2 MiB huge-page pool (Kata's key).
        public var enableHugepages = false
        /// Kata's key: a balloon with free page reporting, so that memory the guest frees
        /// goes back to the host.
        public var reclaimGuestFreedMemory = false
        /// Kata's rate limiter keys, for the sandbox's NICs and disks.
        var rateLimits = KataRateLimits()
        public var diskRateLimiter: RateLimiterConfig { rateLimits.disk }
        public var netRxRateLimiter: RateLimiterConfig { rateLimits.net("rx") }
        public var netTxRateLimiter: RateLimiterConfig { rateLimits.net("tx") }
    }

    public enum SharedFs: String, Sendable, Equatable {
        case virtioFs = "virtio-fs"
        case none
    }

    public struct Agent: Sendable, Equatable {
        /// Seconds to wait for the agent to answer after the VM starts.
        public var dialTimeout = 300
        public var debug = false
        /// Debug/test option: instead of booting a VM, the sandbox talks to a kata-agent
        /// already listening on this Unix socket (`kata-agent --listen unix:PATH`). The
        /// rootfs is then handed to it as a directory.
        public var debugAgentSocket: String?
    }

    public struct Runtime: Sendable, Equatable {
        public var internetworkingModel = "tcfilter"
        public var sandboxCgroupOnly = false
        public var enableDebug = false
    }

    public var hypervisor = Hypervisor()
    public var agent = Agent()
    public var runtime = Runtime()
    /// Where it came from: a path, or "built-in defaults".
    public var source = "built-in defaults"
    /// What the file set that this runtime does not do, one line per key (see `parse`).
    public var warnings: [String] = []

    public init() {}

    public struct ConfigError: Error, CustomStringConvertible, Equatable {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// Kata's own search path after `--config` and `$KATA_CONF_FILE`: a host's Kata file is
    /// read as it is (see `parse`).
    public static let systemPaths = ["/etc/kata-containers/configuration.toml", "/usr/share/defaults/kata-containers/configuration.toml"]

    /// Kata's hypervisor table names: whichever one a file has configures our built-in VMM.
    public static let hypervisorTables: Set<String> = ["kata", "firecracker", "dragonball", "qemu", "clh", "cloud-hypervisor", "stratovirt", "acrn", "remote"]

    /// The search order: explicit path, $KATA_CONF_FILE, Kata's system paths, the defaults.
    public static func load(explicitPath: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                            systemPaths: [String] = systemPaths) throws -> RuntimeConfiguration {
        let candidates: [(String, Bool)] = [
            explicitPath.map { ($0, true) }, environment["KATA_CONF_FILE"].flatMap { $0.isEmpty ? nil : ($0, true) },
        ].compactMap { $0 } + systemPaths.map { ($0, false) }
        for (path, required) in candidates {
            guard FileManager.default.fileExists(atPath: path) else {
                if required { throw ConfigError("\(path): no such configuration file") }
                continue
            }
            let bytes: [UInt8]
            do { bytes = try CheckedFile.read(path, role: "configuration file", limit: CheckedFile.documentLimit) } catch {
                throw ConfigError("\(error)")
            }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw ConfigError("\(path): cannot be read as UTF-8 text")
            }
            var config = try parse(text, file: path)
            config.source = path
            return config
        }
        return RuntimeConfiguration()
    }

    /// Reads our keys and Kata's. A key we implement with a bad value is an error naming it;
    /// a Kata key we do not implement, or a value Kata knows that we have no counterpart
    /// for, is a warning (`warnings`), so a stock Kata file runs.
    public static func parse(_ text: String, file: String = "configuration.toml") throws -> RuntimeConfiguration {
        if let line = nulLine(text) {
            throw ConfigError("\(file): line \(line): a NUL character (a path would be cut short at it)")
        }
        if let line = TOMLHeaderCheck.badHeaderLine(text) {
            throw ConfigError("\(file): line \(line): a table header must start with a key (a letter, digit, '_', '-' or a quoted key)")
        }
        let table: TOMLTable
        do { table = try TOMLTable(string: text) } catch let error as TOMLParseError {
            throw ConfigError("\(file): \(error.source.begin.debugDescription): \(error.description)")
        }
        var config = RuntimeConfiguration()
        let reader = KeyReader(file: file)
        for key in table.keys {
            switch key {
            case "hypervisor":
                let hypervisors = try reader.table(table[key], "hypervisor")
                let names = hypervisors.keys.sorted()
                for name in names where !hypervisorTables.contains(name) {
                    throw ConfigError("\(file): [hypervisor.\(name)]: unknown hypervisor (Kata's are \(hypervisorTables.sorted().joined(separator: ", ")))")
                }
                guard names.count <= 1 else {
                    throw ConfigError("\(file): \(names.map { "[hypervisor.\($0)]" }.joined(separator: ", ")): one hypervisor table at most")
                }
                if let name = names.first {
                    try parseHypervisor(reader.table(hypervisors[name], "hypervisor.\(name)"), section: "hypervisor.\(name)", into: &config.hypervisor, reader)
                }
            case "agent":
                let agents = try reader.table(table[key], "agent")
                for name in agents.keys {
                    guard name == "kata" else { throw ConfigError("\(file): [agent.\(name)]: unknown agent (use [agent.kata])") }
                    try parseAgent(reader.table(agents[name], "agent.kata"), into: &config.agent, reader)
                }
            case "runtime":
                try parseRuntime(reader.table(table[key], "runtime"), into: &config.runtime, reader)
            default:
                // Kata's [factory], [image] and whatever a later Kata adds.
                if let section = table[key]?.table {
                    for name in section.keys { reader.ignore("\(key).\(name)", section[name]) }
                } else {
                    reader.ignore(key, table[key])
                }
            }
        }
        config.warnings = reader.warnings
        return config
    }

    static func parseHypervisor(_ table: TOMLTable, section: String, into h: inout Hypervisor, _ r: KeyReader) throws {
        var vcpusFromHost = false
        for key in table.keys {
            let name = "\(section).\(key)"
            let value = table[key]
            switch key {
            case "path", "ctlpath": _ = try r.string(value, name)  // Kata's external-VMM paths: the VMM is built in
            case "kernel": h.kernel = try r.path(value, name)
            case "initrd":
                let path = try r.string(value, name)
                h.initrd = path.isEmpty ? nil : try r.path(value, name)
            case "kernel_params": h.kernelParams = try r.string(value, name)
            case "default_vcpus":
                // Kata: 0 is the default (1), below 0 the host's CPU count.
                let vcpus = try r.roundedUp(value, name, Int(Int32.min)...Int(Int32.max))
                h.defaultVcpus = vcpus == 0 ? 1 : min(vcpus < 0 ? SandboxSizing.hostCpuCount : vcpus, VmLimits.maxVcpus)
                vcpusFromHost = vcpus < 0
            case "default_maxvcpus": h.defaultMaxVcpus = min(try r.int(value, name, 0...Int(UInt32.max)), VmLimits.maxVcpus)
            case "default_memory":
                let memory = try r.int(value, name, 0...VmLimits.maxMemoryMiB)
                guard memory == 0 || memory >= VmLimits.minMemoryMiB else {
                    throw ConfigError("\(r.file): \(name): \(memory) is out of range (\(VmLimits.minMemoryMiB) to \(VmLimits.maxMemoryMiB), or 0 for the default)")
                }
                h.defaultMemory = memory == 0 ? Hypervisor().defaultMemory : memory
            case "block_device_driver":
                let driver = try r.string(value, name)
                switch driver {
                case "virtio-mmio", "virtio-blk": h.blockDeviceDriver = driver
                case "virtio-scsi", "nvdimm", "virtio-blk-ccw", "virtio-pmem": r.substitute(name, driver, with: "virtio-blk over MMIO")
                default: throw ConfigError("\(r.file): \(name): '\(driver)' is not a block device driver (use virtio-mmio or virtio-blk)")
                }
            case "disable_block_device_use": h.disableBlockDeviceUse = try r.bool(value, name)
            case "enable_debug": h.enableDebug = try r.bool(value, name)
            case "console_log_max_bytes": h.consoleLogMaxBytes = try r.int(value, name, 0...(1 << 40))
            case "shared_fs":
                let kind = try r.string(value, name)
                if let sharedFs = SharedFs(rawValue: kind) {
                    h.sharedFs = sharedFs
                } else if kind == "virtio-9p" || kind == "virtio-fs-nydus" {
                    r.substitute(name, kind, with: "virtio-fs when the daemon is there, else none")
                } else {
                    throw ConfigError("\(r.file): \(name): '\(kind)' is not a shared filesystem (use virtio-fs or none)")
                }
            case "virtio_fs_daemon": h.virtioFsDaemon = try r.path(value, name)
            case "virtio_fs_cache":
                let mode = try r.string(value, name)
                guard ["auto", "always", "none", "never"].contains(mode) else {
                    throw ConfigError("\(r.file): \(name): '\(mode)' is not a cache mode (use auto, always or never)")
                }
                h.virtioFsCache = mode == "never" ? "none" : mode
            case "virtio_fs_cache_size":
                // Kata's DAX window. Without one the guest reads through the queue.
                if try r.int(value, name, 0...(1 << 20)) != 0 { r.substitute(name, "\(value?.int ?? 0)", with: "no DAX window (0)") }
            case "virtio_fs_extra_args": h.virtioFsExtraArgs = try r.strings(value, name)
            case "enable_hugepages": h.enableHugepages = try r.bool(value, name)
            case "reclaim_guest_freed_memory": h.reclaimGuestFreedMemory = try r.bool(value, name)
            case _ where KataRateLimits.keys.contains(key):
                let rate = UInt64(try r.int(value, name, 0...Int.max))
                h.rateLimits.values[key] = rate == 0 ? nil : rate  // 0: no limit, as if unset
            default: r.ignore(name, value)
            }
        }
        if h.reclaimGuestFreedMemory && h.enableHugepages {
            throw ConfigError("\(r.file): \(section).reclaim_guest_freed_memory: cannot be used with enable_hugepages (a balloon cannot give back parts of huge pages)")
        }
        // "As many as the host has" stops at default_maxvcpus, as Kata clamps it.
        if vcpusFromHost && h.defaultMaxVcpus != 0 { h.defaultVcpus = min(h.defaultVcpus, h.defaultMaxVcpus) }
        if h.defaultMaxVcpus != 0 && h.defaultMaxVcpus < h.defaultVcpus {
            throw ConfigError("\(r.file): \(section).default_maxvcpus: \(h.defaultMaxVcpus) is less than default_vcpus (\(h.defaultVcpus))")
        }
    }

    static func parseAgent(_ table: TOMLTable, into a: inout Agent, _ r: KeyReader) throws {
        for key in table.keys {
            let name = "agent.kata.\(key)"
            switch key {
            case "dial_timeout": a.dialTimeout = try r.int(table[key], name, 1...3600)
            case "debug", "enable_debug": a.debug = try r.bool(table[key], name)
            case "debug_agent_socket":
                let path = try r.string(table[key], name)
                guard path.hasPrefix("/"), path.utf8.count < 108 else {
                    throw ConfigError("\(r.file): \(name): must be an absolute socket path shorter than 108 bytes")
                }
                a.debugAgentSocket = path
            default: r.ignore(name, table[key])
            }
        }
    }

    static func parseRuntime(_ table: TOMLTable, into rt: inout Runtime, _ r: KeyReader) throws {
        for key in table.keys {
            let name = "runtime.\(key)"
            switch key {
            case "internetworking_model":
                let model = try r.string(table[key], name)
                switch model {
                case "tcfilter", "none": rt.internetworkingModel = model
                case "macvtap": r.substitute(name, model, with: "tcfilter")
                default: throw ConfigError("\(r.file): \(name): '\(model)' is not an internetworking model (use tcfilter or none)")
                }
            case "sandbox_cgroup_only": rt.sandboxCgroupOnly = try r.bool(table[key], name)
            case "enable_debug": rt.enableDebug = try r.bool(table[key], name)
            default: r.ignore(name, table[key])
            }
        }
    }

    /// The line of the first NUL in `text`, raw or as a `\u0000` / `\U00000000` escape:
    /// TOMLKit hands strings over as C strings, so a NUL would silently cut a value short.
    static func nulLine(_ text: String) -> Int? {
        let bytes = Array(text.utf8)
        var line = 1
        var backslashes = 0
        for (index, byte) in bytes.enumerated() {
            if byte == 0 { return line }
            if byte == UInt8(ascii: "\n") { line += 1 }
            if byte == UInt8(ascii: "\\") { backslashes += 1; continue }
            defer { backslashes = 0 }
            guard backslashes % 2 == 1 else { continue }
            let rest = bytes[index...]
            if rest.starts(with: "u0000".utf8) || rest.starts(with: "U00000000".utf8) { return line }
        }
        return nil
    }
}

/// The VMM's limits as the configuration checks them (the same numbers VmConfig enforces).
enum VmLimits {
    static let maxVcpus = 32
    static let minMemoryMiB = 64
    static let maxMemoryMiB = 1 << 20
}
