import API
import ArgumentParser
import Foundation
import Glibc
import HostInput
import Logging
import Machine
import LinuxSupport

/// `kata-vmm`: boots one kernel in a microVM and exits with a code that says how the
/// guest ended (see README.md, "Exit codes").
@main
struct KataVMM: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "kata-vmm",
        abstract: "Boot a Linux kernel (vmlinux, bzImage or a PVH ELF) directly in a KVM microVM.",
        discussion: """
            Exit codes: 0 guest powered off, 1 VMM error, 2 guest reset (reboot), \
            3 guest triple fault, 4 guest crash, 5 vCPU failure, 64 bad command line, \
            128+N stopped by signal N.
            """,
        version: "Firecracker-API v\(VmController.Identity.firecrackerApiVersion) (kata-vmm \(version))")

    @Option(help: "Guest kernel: ELF vmlinux (64-bit entry or PVH note) or bzImage. Not with --config-file.")
    var kernel: String?

    @Option(name: .customLong("api-sock"), help: ArgumentHelp(
        "Serve Firecracker's REST API (HTTP/1.1) on this Unix socket; without a configuration, wait for InstanceStart.",
        valueName: "PATH"))
    var apiSock: String?

    @Option(name: .customLong("config-file"), help: ArgumentHelp(
        "Boot from a Firecracker JSON config file (boot-source, machine-config, drives, network-interfaces, vsock, fs, entropy, logger, metrics).",
        valueName: "PATH"))
    var configFile: String?

    @Flag(name: .customLong("no-api"), help: "Run without the API server (requires --config-file), as Firecracker's --no-api.")
    var noApi = false

    @Option(help: "Instance id reported by GET / (Firecracker's --id).")
    var id: String = "anonymous-instance"

    @Option(help: "Initial ramdisk (e.g. an uncompressed cpio).")
    var initrd: String?

    @Option(help: "Kernel command line.")
    var cmdline: String = VmConfig.defaultCmdline

    @Option(help: "Number of vCPUs (1-\(VmConfig.maxVcpus)).")
    var cpus: Int = 1

    @Option(help: "Guest memory in MiB.")
    var memory: Int = 128

    @Flag(name: .customLong("huge-pages"), help: "Guest memory from the host's 2 MiB huge-page pool (/proc/sys/vm/nr_hugepages), reserved at start.")
    var hugePages = false

    @Option(help: "Serial console: stdio, file:PATH or none.")
    var serial: String = "stdio"

    @Option(name: .customLong("serial-max-bytes"), help: ArgumentHelp(
        "Cap on a file:PATH console log: past it the file is moved to PATH.1 and a new one started; 0: no cap (default \(VmConfig.defaultSerialLogMaxBytes)).",
        valueName: "BYTES"))
    var serialMaxBytes: Int?

    @Option(name: .customLong("boot-protocol"), help: "Kernel entry: auto, linux64 (boot_params) or pvh.")
    var bootProtocol: String = "auto"

    @Option(name: .customLong("disk"), help: ArgumentHelp(
        "A virtio-blk disk (repeatable).", valueName: "path=PATH[,readonly=on][,id=ID][,engine=sync|aio][,direct=on]"))
    var disks: [String] = []

    @Option(name: .customLong("net"), help: ArgumentHelp(
        "A virtio-net interface on an existing (or creatable) tap (repeatable).", valueName: "tap=NAME[,mac=MAC][,id=ID]"))
    var nets: [String] = []

    @Option(name: .customLong("vsock"), help: ArgumentHelp(
        "A hybrid virtio-vsock device: host clients connect to PATH and send 'CONNECT <port>'; guest connections to port P reach PATH_P.",
        valueName: "cid=N,uds=PATH"))
    var vsock: String?

    @Option(name: .customLong("fs"), help: ArgumentHelp(
        "A virtio-fs device served by a vhost-user backend (virtiofsd) on PATH; the guest mounts TAG (repeatable). Guest memory becomes a shared memfd.",
        valueName: "tag=TAG,socket=PATH[,queues=N][,queue_size=N][,id=ID]"))
    var fs: [String] = []

    @Flag(help: "Attach a virtio-rng device (entropy from the host's getrandom).")
    var rng = false

    @Option(name: .customLong("virtio-discovery"),
            help: "How the guest finds virtio devices: acpi (DSDT) or cmdline (virtio_mmio.device=; boot the guest with acpi=off).")
    var virtioDiscovery: String = "acpi"

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    // Firecracker's own flags, with its meaning.
    @Option(name: .customLong("log-path"), help: ArgumentHelp("Firecracker's logger: the log goes to this file or named pipe (PUT /logger's log_path).",
                                                              valueName: "PATH"))
    var logPath: String?

    @Option(name: .customLong("level"), help: "Firecracker's logger level: Error, Warning, Info, Debug, Trace or Off.")
    var level: String?

    @Flag(name: .customLong("show-level"), help: "Firecracker's logger: each line names its level.")
    var showLevel = false

    @Flag(name: .customLong("show-log-origin"), help: "Firecracker's logger: each line names the file and line it comes from.")
    var showLogOrigin = false

    @Option(name: .customLong("module"), help: "Firecracker's logger module filter: only lines from this module (Devices, VMM, Machine, API, kata_vmm) or file (Devices::VirtioNet).")
    var module: String?

    @Option(name: .customLong("metrics-path"), help: ArgumentHelp("Firecracker's metrics: JSON lines to this file or named pipe (PUT /metrics).",
                                                                  valueName: "PATH"))
    var metricsPath: String?

    @Option(name: .customLong("http-api-max-payload-size"), help: ArgumentHelp(
        "The largest API request body accepted, in bytes (Firecracker's default 51200; at most \(Self.maxPayloadLimit)).", valueName: "BYTES"))
    var httpApiMaxPayloadSize: Int = ApiServer.Limits().maxBodyBytes

    @Option(name: .customLong("start-time-us"), help: ArgumentHelp(
        "Firecracker's: when the launcher started this VMM (CLOCK_MONOTONIC, µs); start-up and boot times count from it.", valueName: "US"))
    var startTimeUs: UInt64?

    @Option(name: .customLong("start-time-cpu-us"), help: ArgumentHelp("Firecracker's: the process CPU time then (µs).", valueName: "US"))
    var startTimeCpuUs: UInt64?

    @Option(name: .customLong("parent-cpu-time-us"), help: ArgumentHelp("Firecracker's: CPU time the launcher's parent spent (µs), added to ours.",
                                                                        valueName: "US"))
    var parentCpuTimeUs: UInt64 = 0

    @Flag(name: .customLong("boot-timer"), help: "Firecracker's boot-timer device (always present in kata-vmm: the guest's write logs Guest-boot-time).")
    var bootTimer = false

    @Option(name: .customLong("mmds-size-limit"), help: ArgumentHelp(
        "The largest MMDS data store, in bytes of compact JSON (Firecracker's default: --http-api-max-payload-size).", valueName: "BYTES"))
    var mmdsSizeLimit: Int?

    @Option(name: .customLong("metadata"), help: ArgumentHelp("Firecracker's: a JSON file that fills the MMDS data store at start (as PUT /mmds).",
                                                              valueName: "PATH"))
    var metadata: String?

    /// Bodies are held whole while they arrive: a caller cannot make the VMM buffer more.
    static let maxPayloadLimit = 16 << 20

    /// Marks the process-start reference for boot-time measurements before anything else runs.
    static func main() {
        ProcessClock.markProcessStart()
        main(nil)
    }

    func validate() throws {
        if noApi && configFile == nil { throw ValidationError("--no-api requires --config-file") }
        if noApi && apiSock != nil { throw ValidationError("--no-api and --api-sock exclude each other") }
        if kernel != nil && configFile != nil {
            throw ValidationError("--kernel and --config-file exclude each other: the config file's boot-source names the kernel")
        }
        if kernel == nil && configFile == nil && apiSock == nil {
            throw ValidationError("missing --kernel (or --config-file, or --api-sock to configure through the API)")
        }
        _ = try parsedSerial()
        if let serialMaxBytes, serialMaxBytes < 0 {
            throw ValidationError("invalid --serial-max-bytes \(serialMaxBytes): must be 0 (no cap) or a byte count")
        }
        _ = try parsedBootProtocol()
        _ = try parsedDisks()
        _ = try parsedNets()
        _ = try parsedVsock()
        _ = try parsedFs()
        guard VmConfig.VirtioDiscovery(rawValue: virtioDiscovery) != nil else {
            throw ValidationError("invalid --virtio-discovery '\(virtioDiscovery)': use acpi or cmdline")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("invalid --log-level '\(logLevel)'")
        }
        _ = try commandLineLogger()
        if let mmdsSizeLimit, !(1...Self.maxPayloadLimit).contains(mmdsSizeLimit) {
            throw ValidationError("invalid --mmds-size-limit \(mmdsSizeLimit): 1 to \(Self.maxPayloadLimit) bytes")
        }
        if metadata?.isEmpty == true { throw ValidationError("invalid --metadata: must not be empty") }
        if startTimeUs == nil && (startTimeCpuUs != nil || parentCpuTimeUs != 0) {
            throw ValidationError("--start-time-cpu-us and --parent-cpu-time-us need --start-time-us")
        }
        if let startTimeUs, startTimeUs > ProcessClock.monotonicNanos() / 1000 {
            throw ValidationError("invalid --start-time-us \(startTimeUs): later than now on CLOCK_MONOTONIC")
        }
        if metricsPath?.isEmpty == true { throw ValidationError("invalid --metrics-path: must not be empty") }
        guard (1...Self.maxPayloadLimit).contains(httpApiMaxPayloadSize) else {
            throw ValidationError("invalid --http-api-max-payload-size \(httpApiMaxPayloadSize): 1 to \(Self.maxPayloadLimit) bytes")
        }
    }

    /// Firecracker's logger flags as PUT /logger's settings; nil when none is given.
    func commandLineLogger() throws -> VmConfig.LogConfig? {
        guard logPath != nil || level != nil || showLevel || showLogOrigin || module != nil else { return nil }
        var log = VmConfig.LogConfig()
        if let logPath {
            guard !logPath.isEmpty else { throw ValidationError("invalid --log-path: must not be empty") }
            log.path = logPath
        }
        if let level {
            guard let parsed = VmConfig.LogConfig.Level.allCases.first(where: { $0.rawValue.lowercased() == level.lowercased() }) else {
                throw ValidationError("invalid --level '\(level)': use Error, Warning, Info, Debug, Trace or Off")
            }
            log.level = parsed
        }
        log.showLevel = showLevel
        log.showOrigin = showLogOrigin
        if let module {
            if let error = VmConfig.LogConfig.moduleError(module) { throw ValidationError("invalid --module: \(error)") }
            log.module = module
        }
        return log
    }

    func parsedSerial() throws -> VmConfig.SerialOutput {
        switch serial {
        case "stdio": return .stdio
        case "none": return .none
        case let s where s.hasPrefix("file:") && s.count > 5: return .file(String(s.dropFirst(5)))
        default: throw ValidationError("invalid --serial '\(serial)': use stdio, file:PATH or none")
        }
    }

    func parsedDisks() throws -> [DiskConfig] {
        try disks.map { spec in
            do { return try DiskConfig.parse(spec) } catch let error as DiskConfig.ParseError {
                throw ValidationError(error.description)
            }
        }
    }

    func parsedNets() throws -> [NetConfig] {
        try nets.map { spec in
            do { return try NetConfig.parse(spec) } catch let error as NetConfig.ParseError {
                throw ValidationError(error.description)
            }
        }
    }

    func parsedVsock() throws -> VsockConfig? {
        guard let vsock else { return nil }
        do { return try VsockConfig.parse(vsock) } catch let error as VsockConfig.ParseError {
            throw ValidationError(error.description)
        }
    }

    func parsedFs() throws -> [FsConfig] {
        try fs.map { spec in
            do { return try FsConfig.parse(spec) } catch let error as FsConfig.ParseError {
                throw ValidationError(error.description)
            }
        }
    }

    func parsedBootProtocol() throws -> BootProtocol? {
        if bootProtocol == "auto" { return nil }
        guard let parsed = BootProtocol(rawValue: bootProtocol) else {
            throw ValidationError("invalid --boot-protocol '\(bootProtocol)': use auto, linux64 or pvh")
        }
        return parsed
    }

    /// The configuration from the flags or the config file; nil when the API provides it.
    func initialConfig() throws -> VmConfig? {
        if let configFile {
            let data = Data(try CheckedFile.read(configFile, role: "config file", limit: CheckedFile.documentLimit))
            var config: VmConfig
            do { config = try FullVmConfiguration.parse(data) } catch let error as ApiError {
                throw ApiError("config file '\(configFile)': \(error.message)")
            }
            if let serialMaxBytes { config.serialLogMaxBytes = serialMaxBytes }
            return config
        }
        guard let kernel else { return nil }
        var config = VmConfig(kernelPath: kernel, initrdPath: initrd, cmdline: cmdline, vcpuCount: cpus,
                              memoryMiB: memory, serial: try parsedSerial(), bootProtocol: try parsedBootProtocol())
        config.disks = try parsedDisks()
        config.nets = try parsedNets()
        config.vsock = try parsedVsock()
        config.fs = try parsedFs()
        config.rng = rng
        config.hugePages = hugePages
        config.virtioDiscovery = VmConfig.VirtioDiscovery(rawValue: virtioDiscovery) ?? .acpi
        if let serialMaxBytes { config.serialLogMaxBytes = serialMaxBytes }
        return config
    }

    func run() throws {
        if let startTimeUs {
            ProcessClock.setProcessStart(monotonicMicros: startTimeUs, cpuMicros: startTimeCpuUs, parentCpuMicros: parentCpuTimeUs)
        }
        LogSink.shared.setDefault(level: Logger.Level(rawValue: logLevel) ?? .info)
        LoggingSystem.bootstrap { label in VmmLogHandler(label: label) }
        let logger = Logger(label: "kata-vmm")

        // SIGINT/SIGTERM/SIGHUP stop the VM cleanly; they are taken by sigwait on a thread
        // of their own, so they are blocked everywhere else (threads inherit the mask).
        let stopSignals = SignalWaiter.block([SIGINT, SIGTERM, SIGHUP])

        // Flags, config file and API all produce one VmConfig, owned by the controller.
        let controller = VmController(identity: .init(instanceId: id, vmmVersion: Self.version), logger: logger,
                                      mmdsSizeLimit: mmdsSizeLimit ?? httpApiMaxPayloadSize)
        var server: ApiServer?
        do {
            if let metadata {
                let data = Data(try CheckedFile.read(metadata, role: "metadata file", limit: CheckedFile.documentLimit))
                do { try controller.mmds.put(try JSONValue.parse(data, what: "the metadata file")) } catch let error as ApiError {
                    throw ApiError("--metadata '\(metadata)': \(error.message)")
                }
            }
            try controller.configureObservability(logger: try commandLineLogger(), metricsPath: metricsPath)
            let config = try initialConfig()
            if let config { try controller.configure(config) }
            if let apiSock {
                var limits = ApiServer.Limits()
                limits.maxBodyBytes = httpApiMaxPayloadSize
                let api = ApiServer(socketPath: apiSock, controller: controller, limits: limits, logger: logger)
                try api.start()
                controller.apiServerStarted()
                server = api
            }
            if config != nil { try controller.start() }
        } catch {
            server?.close()
            FileHandleStderr.write("kata-vmm: error: \(error)\n")
            throw ExitCode(VmExitReason.vmmError("").exitCode)
        }
        try stopSignals.handOff { signal in controller.stop(.signal(signal)) }

        let reason = controller.waitForExit()
        controller.shutdown()
        server?.close()
        switch reason {
        case .poweroff, .reset, .signal: logger.info("\(reason)")
        default: logger.error("\(reason)")
        }
        throw ExitCode(reason.exitCode)
    }
}

/// Unbuffered writes to stderr for the one-line error messages.
enum FileHandleStderr {
    static func write(_ text: String) {
        var text = text
        text.withUTF8 { buffer in _ = Glibc.write(STDERR_FILENO, buffer.baseAddress, buffer.count) }
    }
}

