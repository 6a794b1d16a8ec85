import Foundation
import Glibc
import HostInput
import Machine
import TOMLKit

/// `configuration.toml`, modelled on Kata's: the guest kernel and image, the VM's size, the
/// agent connection and the runtime's own options. A value type; `load` finds the file
/// (`--config`, `$KATA_CONF_FILE`, /etc/kata-containers/configuration.toml, else the
/// built-in defaults) and `parse` judges every key: an unknown key or a bad value is an
/// error naming it.
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

    public init() {}

    public struct ConfigError: Error, CustomStringConvertible, Equatable {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    public static let systemPath = "/etc/kata-containers/configuration.toml"

    /// The search order: explicit path, $KATA_CONF_FILE, the system file, the defaults.
    public static func load(explicitPath: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> RuntimeConfiguration {
        let candidates: [(String, Bool)] = [
            explicitPath.map { ($0, true) }, environment["KATA_CONF_FILE"].flatMap { $0.isEmpty ? nil : ($0, true) },
            (systemPath, false),
        ].compactMap { $0 }
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
                for name in hypervisors.keys {
                    guard name == "kata" else {
                        throw ConfigError("\(file): [hypervisor.\(name)]: unknown hypervisor (this runtime has one: [hypervisor.kata])")
                    }
                    try parseHypervisor(reader.table(hypervisors[name], "hypervisor.kata"), into: &config.hypervisor, reader)
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
                throw ConfigError("\(file): \(key): unknown key (known: [hypervisor.kata], [agent.kata], [runtime])")
            }
        }
        return config
    }

    static func parseHypervisor(_ table: TOMLTable, into h: inout Hypervisor, _ r: KeyReader) throws {
        let section = "hypervisor.kata"
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
            case "default_vcpus": h.defaultVcpus = try r.int(value, name, 1...VmLimits.maxVcpus)
            case "default_maxvcpus": h.defaultMaxVcpus = try r.int(value, name, 0...VmLimits.maxVcpus)
            case "default_memory": h.defaultMemory = try r.int(value, name, VmLimits.minMemoryMiB...VmLimits.maxMemoryMiB)
            case "block_device_driver":
                let driver = try r.string(value, name)
                guard ["virtio-mmio", "virtio-blk"].contains(driver) else {
                    throw ConfigError("\(r.file): \(name): '\(driver)' is not supported (use virtio-mmio or virtio-blk)")
                }
                h.blockDeviceDriver = driver
            case "disable_block_device_use": h.disableBlockDeviceUse = try r.bool(value, name)
            case "enable_debug": h.enableDebug = try r.bool(value, name)
            case "console_log_max_bytes": h.consoleLogMaxBytes = try r.int(value, name, 0...(1 << 40))
            case "shared_fs":
                let kind = try r.string(value, name)
                guard let sharedFs = SharedFs(rawValue: kind) else {
                    throw ConfigError("\(r.file): \(name): '\(kind)' is not supported (use virtio-fs or none)")
                }
                h.sharedFs = sharedFs
            case "virtio_fs_daemon": h.virtioFsDaemon = try r.path(value, name)
            case "virtio_fs_cache":
                let mode = try r.string(value, name)
                guard ["auto", "always", "none", "never"].contains(mode) else {
                    throw ConfigError("\(r.file): \(name): '\(mode)' is not a cache mode (use auto, always or never)")
                }
                h.virtioFsCache = mode == "never" ? "none" : mode
            case "virtio_fs_cache_size":
                // Kata's DAX window. Without one the guest reads through the queue.
                guard try r.int(value, name, 0...(1 << 20)) == 0 else {
                    throw ConfigError("\(r.file): \(name): a DAX window is not supported (use 0)")
                }
            case "virtio_fs_extra_args": h.virtioFsExtraArgs = try r.strings(value, name)
            case "enable_hugepages": h.enableHugepages = try r.bool(value, name)
            default: throw ConfigError("\(r.file): \(name): unknown key")
            }
        }
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
            default: throw ConfigError("\(r.file): \(name): unknown key")
            }
        }
    }

    static func parseRuntime(_ table: TOMLTable, into rt: inout Runtime, _ r: KeyReader) throws {
        for key in table.keys {
            let name = "runtime.\(key)"
            switch key {
            case "internetworking_model":
                let model = try r.string(table[key], name)
                guard ["tcfilter", "none"].contains(model) else {
                    throw ConfigError("\(r.file): \(name): '\(model)' is not supported (use tcfilter or none)")
                }
                rt.internetworkingModel = model
            case "sandbox_cgroup_only": rt.sandboxCgroupOnly = try r.bool(table[key], name)
            case "enable_debug": rt.enableDebug = try r.bool(table[key], name)
            default: throw ConfigError("\(r.file): \(name): unknown key")
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

    /// Typed reads with errors that name the key.
    struct KeyReader {
        let file: String

        func table(_ value: TOMLValueConvertible?, _ key: String) throws -> TOMLTable {
            guard let table = value?.table else { throw ConfigError("\(file): \(key): expected a table") }
            return table
        }

        func string(_ value: TOMLValueConvertible?, _ key: String) throws -> String {
            guard let string = value?.string else { throw ConfigError("\(file): \(key): expected a string, got \(describe(value))") }
            do { try string.checkNoNul(field: key) } catch { throw ConfigError("\(file): \(error)") }
            return string
        }

        func path(_ value: TOMLValueConvertible?, _ key: String) throws -> String {
            let path = try string(value, key)
            guard path.hasPrefix("/") else { throw ConfigError("\(file): \(key): '\(path)' is not an absolute path") }
            return path
        }

        func strings(_ value: TOMLValueConvertible?, _ key: String) throws -> [String] {
            guard let array = value?.array else { throw ConfigError("\(file): \(key): expected an array of strings, got \(describe(value))") }
            return try array.enumerated().map { index, element in try string(element, "\(key)[\(index)]") }
        }

        func bool(_ value: TOMLValueConvertible?, _ key: String) throws -> Bool {
            guard let bool = value?.bool else { throw ConfigError("\(file): \(key): expected true or false, got \(describe(value))") }
            return bool
        }

        func int(_ value: TOMLValueConvertible?, _ key: String, _ range: ClosedRange<Int>) throws -> Int {
            guard let int = value?.int else { throw ConfigError("\(file): \(key): expected an integer, got \(describe(value))") }
            guard range.contains(int) else {
                throw ConfigError("\(file): \(key): \(int) is out of range (\(range.lowerBound) to \(range.upperBound))")
            }
            return int
        }

        func describe(_ value: TOMLValueConvertible?) -> String {
            guard let value else { return "nothing" }
            return "\(value.type) \(value.debugDescription)"
        }
    }
}

/// The VMM's limits as the configuration checks them (the same numbers VmConfig enforces).
enum VmLimits {
    static let maxVcpus = 32
    static let minMemoryMiB = 64
    static let maxMemoryMiB = 1 << 20
}
