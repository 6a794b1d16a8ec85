import Foundation
import Devices
import Logging
import Machine

/// Owns the microVM behind the API: the configuration being built before boot (one
/// `VmConfig`, the same value the config file and the CLI flags produce), the running
/// `MicroVM` after `InstanceStart`, and the state machine Not started -> Running <-> Paused.
/// Every request runs on one serial queue of its own, so that the NIO event loop never
/// waits for the VM (a pause waits for the vCPUs to park) and vCPUs never wait for the API.
public final class VmController: @unchecked Sendable {  // mutable state confined to `queue` (serial); `exitReason` under `exitCondition`
    public enum State: String, Sendable {
        case notStarted = "Not started"
        case running = "Running"
        case paused = "Paused"
    }

    public struct Identity: Sendable {
        public var instanceId: String
        public var appName: String
        public var vmmVersion: String
        /// The Firecracker release whose API this one follows: what GET /version and
        /// `--version` report as firecracker_version, for clients that check it.
        public static let firecrackerApiVersion = "1.7.0"

        public init(instanceId: String = "anonymous-instance", appName: String = "kata-vmm", vmmVersion: String) {
            self.instanceId = instanceId
            self.appName = appName
            self.vmmVersion = vmmVersion
        }
    }

    /// Seconds between periodic metrics lines (Firecracker: 60).
    public static let metricsInterval = 60

    public let identity: Identity
    let logger: Logger
    /// MMDS's data store: it outlives no VM but exists before one, as in Firecracker.
    public let mmds: MmdsDataStore
    let queue = DispatchQueue(label: "kata-vmm.vm-controller")
    // Confined to `queue`:
    private var config = VmConfig(kernelPath: "")
    var vm: MicroVM?
    private var state = State.notStarted
    let metrics = MetricsWriter()
    var metricsTimer: DispatchSourceTimer?
    var requestCounters: [String: [String: UInt64]] = [:]
    /// Process start (or Firecracker's `--start-time-us`) to the API server serving.
    var apiServerStartup: (wallMicros: UInt64, cpuMicros: UInt64) = (0, 0)
    // The end of the VM, for whoever waits in `waitForExit`:
    private let exitCondition = NSCondition()
    private var exitReason: VmExitReason?

    public init(identity: Identity, logger: Logger, mmdsSizeLimit: Int = MmdsDataStore.defaultSizeLimit) {
        self.identity = identity
        self.logger = logger
        mmds = MmdsDataStore(sizeLimit: mmdsSizeLimit)
    }

    // MARK: Entry points

    /// Runs `request` on the controller queue and hands the response to `completion`
    /// (on that queue).
    public func handle(_ request: ApiRequest, completion: @escaping @Sendable (ApiResponse) -> Void) {
        queue.async {
            completion(self.respond(to: request))
        }
    }

    /// Takes a whole configuration (config file or CLI flags): its logger and metrics
    /// settings apply at once, and stand where it has none of its own (Firecracker's
    /// `--log-path` and `--metrics-path` before a config file). Only before `InstanceStart`.
    public func configure(_ newConfig: VmConfig) throws {
        try queue.sync {
            guard state == .notStarted else { throw ApiError.notAllowedAfterStart }
            if newConfig.metricsPath != nil && config.metricsPath != nil {
                throw ApiError("metrics_path: the metrics system is already initialized")
            }
            if let log = newConfig.logger { try LogSink.shared.configure(log) }
            if let path = newConfig.metricsPath { try openMetrics(path) }
            var merged = newConfig
            merged.logger = newConfig.logger ?? config.logger
            merged.metricsPath = newConfig.metricsPath ?? config.metricsPath
            config = merged
        }
    }

    /// The API server serves: its start-up time goes to the metrics (`api_server`) and the log.
    public func apiServerStarted() {
        let now = ProcessClock.now(), start = ProcessClock.processStart
        let startup = ((now.wallNanos &- start.wallNanos) / 1000, (now.cpuNanos &- start.cpuNanos) / 1000)
        queue.sync { apiServerStartup = startup }
        logger.info("API server started after \(startup.0) us (\(startup.1) CPU us)")
    }

    /// The logger and metrics of Firecracker's command line (`--log-path`, `--level`,
    /// `--show-level`, `--show-log-origin`, `--metrics-path`), applied as PUT /logger and
    /// PUT /metrics would be.
    public func configureObservability(logger log: VmConfig.LogConfig?, metricsPath: String?) throws {
        try queue.sync {
            if let log {
                try LogSink.shared.configure(log)
                config.logger = log
            }
            if let metricsPath {
                try openMetrics(metricsPath)
                config.metricsPath = metricsPath
            }
        }
    }

    /// InstanceStart without the API (config file, CLI flags). The boot-time reference
    /// stays the first KVM_RUN, as before the API existed.
    public func start() throws {
        try queue.sync { try startInstance(marksInstanceStart: false) }
    }

    public var currentState: State { queue.sync { state } }

    /// Blocks until the guest ends or `stop` is called; returns why.
    public func waitForExit() -> VmExitReason {
        exitCondition.lock()
        while exitReason == nil { exitCondition.wait() }
        let reason = exitReason!
        exitCondition.unlock()
        return reason
    }

    /// Stops the VM (a signal, say); before InstanceStart it ends `waitForExit` directly.
    public func stop(_ reason: VmExitReason) {
        queue.async {
            if let vm = self.vm { vm.stop(reason) } else { self.finish(reason) }
        }
    }

    /// Releases the VM's threads and resources and writes a last metrics line.
    public func shutdown() {
        queue.sync {
            metricsTimer?.cancel()
            metricsTimer = nil
            vm?.shutdown()
            if metrics.isOpen { metrics.flush(metricSections()) }
        }
    }

    private func finish(_ reason: VmExitReason) {
        exitCondition.lock()
        if exitReason == nil { exitReason = reason }
        exitCondition.broadcast()
        exitCondition.unlock()
    }

    // MARK: Requests

    private func respond(to request: ApiRequest) -> ApiResponse {
        let endpoint: ApiEndpoint
        do {
            endpoint = try ApiEndpoint.route(method: request.method, uri: request.uri)
        } catch let error as ApiError {
            logger.debug("API \(request.method) \(request.uri): \(error.message)")
            return .fault(error)
        } catch {
            return .fault(ApiError("\(error)"))
        }
        let (section, name) = endpoint.metric
        requestCounters[section, default: [:]][name + "_count", default: 0] += 1
        do {
            let empty = request.body.isEmpty && endpoint.bodyIsOptional
            let body: JSONValue = endpoint.takesBody && !empty ? try JSONValue.parse(Data(request.body)) : .null
            return try execute(endpoint, body: body)
        } catch {
            requestCounters[section, default: [:]][name + "_fails", default: 0] += 1
            let apiError = error as? ApiError ?? ApiError("\(error)")
            logger.info("API \(request.method) \(request.uri) refused: \(apiError.message)")
            return .fault(apiError)
        }
    }

    private func requireNotStarted() throws {
        guard state == .notStarted else { throw ApiError.notAllowedAfterStart }
    }

    private func requireStarted() throws -> MicroVM {
        guard state != .notStarted, let vm else { throw ApiError.notAllowedBeforeStart }
        return vm
    }

    /// Applies `change` to a copy of the configuration and keeps it only if it validates:
    /// a refused request changes nothing.
    private func update(_ change: (inout VmConfig) throws -> Void) throws {
        var candidate = config
        try change(&candidate)
        do { try candidate.validate() } catch { throw ApiError("\(error)") }
        config = candidate
    }

    private func execute(_ endpoint: ApiEndpoint, body: JSONValue) throws -> ApiResponse {
        switch endpoint {
        case .instanceInfo:
            return .json(.object(["id": .string(identity.instanceId), "state": .string(state.rawValue),
                                  "vmm_version": .string(identity.vmmVersion), "app_name": .string(identity.appName)]))
        case .version:
            return .json(.object(["firecracker_version": .string(Identity.firecrackerApiVersion)]))
        case .vmConfig:
            return .json(FullVmConfiguration.describe(config))
        case .getMachineConfig:
            return .json(MachineConfiguration.describe(config))
        case .putMachineConfig, .patchMachineConfig:
            try requireNotStarted()
            let partial = endpoint == .patchMachineConfig
            let machine = try MachineConfiguration(body, path: "", partial: partial)
            try update { machine.apply(to: &$0, partial: partial) }
        case .putBootSource:
            try requireNotStarted()
            let source = try BootSource(body, path: "")
            try update { source.apply(to: &$0) }
        case .putDrive(let id):
            try requireNotStarted()
            let drive = try Drive(body, path: "", pathId: id)
            try update { drive.apply(to: &$0) }
        case .patchDrive(let id):
            let vm = try requireStarted()
            let patch = try PartialDrive(body, pathId: id)
            guard let index = config.diskIds.firstIndex(of: id) else { throw ApiError("drive_id: no drive '\(id)'") }
            if let path = patch.pathOnHost {
                do { try vm.replaceDisk(id: id, path: path) } catch { throw ApiError("path_on_host: \(error)") }
                config.disks[index].path = path
            }
            if let update = patch.rateLimiter {
                try vm.updateDiskRateLimiter(id: id, update)
                config.disks[index].rateLimiter = update.applied(to: config.disks[index].rateLimiter)
            }
        case .putNetworkInterface(let id):
            try requireNotStarted()
            let net = try NetworkInterface(body, path: "", pathId: id)
            try update { try net.apply(to: &$0) }
        case .patchNetworkInterface(let id):
            let vm = try requireStarted()
            let patch = try PartialNetworkInterface(body, pathId: id)
            guard let index = config.nets.firstIndex(where: { $0.id == patch.id }) else {
                throw ApiError("iface_id: no network interface '\(id)'")
            }
            let rx = patch.rxRateLimiter?.applied(to: config.nets[index].rxRateLimiter) ?? config.nets[index].rxRateLimiter
            let tx = patch.txRateLimiter?.applied(to: config.nets[index].txRateLimiter) ?? config.nets[index].txRateLimiter
            vm.updateNetRateLimiters(index: index, rx: patch.rxRateLimiter, tx: patch.txRateLimiter)
            config.nets[index].rxRateLimiter = rx
            config.nets[index].txRateLimiter = tx
        case .putFs(let id):
            try requireNotStarted()
            let device = try FsDevice(body, path: "", pathId: id)
            try update { device.apply(to: &$0) }
        case .putVsock:
            try requireNotStarted()
            let vsock = try VsockSection(body, path: "")
            try update { $0.vsock = vsock.vsock }
        case .putEntropy:
            try requireNotStarted()
            let entropy = try EntropySection(body, path: "")
            try update { entropy.apply(to: &$0) }
        case .putSerial:
            try requireNotStarted()
            let section = try SerialSection(body, path: "")
            try update { section.apply(to: &$0) }
        case .putBalloon:
            try requireNotStarted()
            let section = try BalloonSection(body, path: "")
            try update { $0.balloon = section.config }
        case .getBalloon:
            guard let balloon = vm?.balloonConfig ?? config.balloon else { throw ApiError("balloon device not configured") }
            return .json(BalloonSection.describe(balloon))
        case .patchBalloon:
            // Post-boot only, as Firecracker's implementation (PUT sets it before).
            let vm = try requireStarted()
            let amount = try BalloonSection.amount(body)
            guard config.balloon != nil else { throw ApiError("balloon device not configured") }
            do { try vm.setBalloonTarget(amountMiB: amount) } catch { throw ApiError("amount_mib: \(error)") }
            try update { $0.balloon?.amountMiB = amount }
        case .getBalloonStatistics:
            let vm = try requireStarted()
            do { return .json(BalloonSection.describe(try vm.balloonStatistics())) } catch { throw ApiError("\(error)") }
        case .patchBalloonStatistics:
            let seconds = try BalloonSection.pollingInterval(body)
            let vm = try requireStarted()
            guard config.balloon != nil else { throw ApiError("balloon device not configured") }
            // Only the interval changes: whether there is a statistics queue was fixed at boot.
            do { try vm.setBalloonStatsInterval(seconds: seconds) } catch { throw ApiError("stats_polling_interval_s: \(error)") }
            config.balloon?.statsPollingIntervalS = seconds
        case .getMmds:
            return .json(mmds.value)
        case .putMmds:
            try mmds.put(body)
        case .patchMmds:
            try mmds.patch(body)
        case .putMmdsConfig:
            try requireNotStarted()
            let section = try MmdsConfigSection(body, path: "")
            try update { $0.mmds = section.config }
        case .startBalloonHinting:
            let vm = try requireStarted()
            let acknowledge = try BalloonSection.acknowledgeOnStop(body)
            do { try vm.startBalloonHinting(acknowledgeOnStop: acknowledge) } catch { throw ApiError("\(error)") }
        case .stopBalloonHinting:
            let vm = try requireStarted()
            if body != .null { _ = try StrictObject(body, path: "", allowed: []) }
            do { try vm.stopBalloonHinting() } catch { throw ApiError("\(error)") }
        case .getBalloonHintingStatus:
            let vm = try requireStarted()
            do { return .json(BalloonSection.describe(try vm.balloonHintingStatus())) } catch { throw ApiError("\(error)") }
        case .putLogger:
            try requireNotStarted()
            let section = try LoggerSection(body, path: "")
            try LogSink.shared.configure(section.log)
            config.logger = section.log
        case .putMetrics:
            try requireNotStarted()
            let section = try MetricsSection(body, path: "")
            guard config.metricsPath == nil else { throw ApiError("metrics_path: the metrics system is already initialized") }
            try openMetrics(section.path)
            config.metricsPath = section.path
        case .putActions:
            let object = try StrictObject(body, path: "", allowed: ["action_type"])
            guard let action = try object.choice("action_type", ["InstanceStart", "SendCtrlAltDel", "FlushMetrics"]) else {
                throw ApiError("action_type: missing required field")
            }
            switch action {
            case "InstanceStart":
                do { try startInstance(marksInstanceStart: true) } catch let error as ApiError { throw error } catch {
                    throw ApiError("InstanceStart: \(error)")
                }
            case "SendCtrlAltDel":
                // While paused the scancodes wait in the i8042 until the guest runs again.
                try requireStarted().sendCtrlAltDel()
            default:
                guard metrics.isOpen else { throw ApiError("FlushMetrics: the metrics system is not initialized (PUT /metrics first)") }
                guard metrics.flush(metricSections()) else { throw ApiError("FlushMetrics: writing to '\(metrics.path ?? "")' failed") }
            }
        case .patchVm:
            let object = try StrictObject(body, path: "", allowed: ["state"])
            guard let wanted = try object.choice("state", ["Paused", "Resumed"]) else { throw ApiError("state: missing required field") }
            let vm = try requireStarted()
            if wanted == "Paused" {
                if state != .paused {
                    vm.pause()
                    state = .paused
                    logger.info("microVM paused")
                }
            } else if state != .running {
                vm.resume()
                state = .running
                logger.info("microVM resumed")
            }
        }
        return .noContent
    }

    private func startInstance(marksInstanceStart: Bool) throws {
        guard state == .notStarted else { throw ApiError("InstanceStart: the microVM is already started") }
        guard !config.kernelPath.isEmpty else {
            throw ApiError("InstanceStart: no boot source (PUT /boot-source with kernel_image_path first)")
        }
        if marksInstanceStart { ProcessClock.markInstanceStart() }
        let vm: MicroVM
        do {
            vm = try MicroVM(config: config, metadata: mmds, logger: logger)
            try vm.start()
        } catch {
            if marksInstanceStart { ProcessClock.instanceStart = nil }
            throw error
        }
        self.vm = vm
        state = .running
        let thread = Thread { [weak self] in
            let reason = vm.waitForExit()
            self?.finish(reason)
        }
        thread.name = "vm-exit-waiter"
        thread.start()
    }
}
