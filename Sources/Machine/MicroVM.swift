import CKVM
import CLinux
import Devices
import Glibc
import Logging
import HostInput
import VMM
import LinuxSupport

/// One microVM: KVM VM, guest memory, the loaded kernel, the legacy and virtio devices, the
/// vCPU threads and the event loop. `kata-vmm` runs one per process; the runtime's sandbox
/// monitor embeds one.
public final class MicroVM: @unchecked Sendable {  // all `let` but `console`/`started`/`shutDown`, which only start() and shutdown() change, called by one owner (VmController's queue, the sandbox monitor)
    public let config: VmConfig
    public let memory: GuestMemory
    public let boot: DirectBoot.Result
    public let lifecycle = VmLifecycle()
    public let i8042: I8042

    let logger: Logger
    let kvm: Kvm
    let vm: Vm
    /// KVM's memory slot for each of `memory.regions`.
    let memorySlots: [UInt32]
    let loop: EventLoop
    let pio = Bus()
    let mmio = Bus()
    let serial: Serial8250
    let runners: [VcpuRunner]
    /// The virtio-mmio devices, in slot order: disks, network interfaces, vsock, rng, virtio-fs.
    public let virtioDevices: [VirtioMmioTransport]
    public let virtioSlots: [VirtioMmioSlot]
    /// The disks' devices, by disk index (the first transports): kept typed as built, for
    /// the one disk-specific operation, `replaceDisk`.
    private let blocks: [VirtioBlock]
    /// The network devices, by interface index, for their rate limiters.
    private let nets: [VirtioNet]
    private let rng: VirtioRng?
    /// The balloon and its transport (targets and statistics change under its lock).
    private let balloon: (device: VirtioBalloon, transport: VirtioMmioTransport)?
    /// The command line the guest actually got (with virtio_mmio.device= entries when asked).
    public let kernelCmdline: String
    private var console: ConsoleInput?
    private var started = false
    private var shutDown = false

    /// Builds the whole VM; nothing runs until `start()`. Throws a one-line error for
    /// every bad input: files, kernel format, sizes, and KVM's refusals.
    /// `metadata` is what the guest reads through the metadata service, when `config.mmds`
    /// lets an interface reach it.
    public init(config: VmConfig, metadata: (any MmdsDataSource)? = nil, logger: Logger = Logger(label: "kata-vmm")) throws {
        // A host that did not mark its process start (a library user such as the runtime's
        // monitor) measures from here: the VM's construction.
        _ = ProcessClock.processStart
        self.config = config
        self.logger = logger
        try config.validate()
        let kernelImage = try CheckedFile.read(config.kernelPath, role: "kernel", limit: CheckedFile.bootImageLimit, allowEmpty: false)
        let initrd = try config.initrdPath.map { try CheckedFile.read($0, role: "initrd", limit: CheckedFile.bootImageLimit, allowEmpty: false) }

        kvm = try Kvm()
        try config.validate(hostMaxVcpus: kvm.maxVcpus)
        vm = try kvm.createVm()
        try vm.setUpX86Platform()

        // A vhost-user backend maps guest RAM itself, so it must be a shared memfd then;
        // otherwise anonymous memory keeps the common case as it was.
        memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: UInt64(config.memoryMiB) << 20),
                                 backing: config.memoryBacking, transparentHugePages: config.transparentHugePages,
                                 trackDirtyPages: config.trackDirtyPages)
        memorySlots = try vm.register(memory)

        // virtio devices: open every backend before anything boots, so a bad disk is a clean error.
        var blocks: [VirtioBlock] = []
        for (disk, id) in zip(config.disks, config.diskIds) {
            let backend = try BlockBackend(path: disk.path, readOnly: disk.readOnly, direct: disk.direct)
            blocks.append(try VirtioBlock(backend: backend, serial: id, engine: disk.engine, rateLimiter: disk.rateLimiter,
                                          logger: logger))
        }
        self.blocks = blocks
        var devices: [any VirtioDevice] = blocks
        loop = try EventLoop()
        var nets: [VirtioNet] = []
        let mmds = try config.mmds.map { mmds in
            guard let metadata else { throw VmConfig.ValidationError.mmds("no data store was given for the metadata service") }
            return MmdsService(config: mmds, source: metadata)
        }
        for net in config.nets {
            let reachesMmds = mmds?.config.networkInterfaces.contains(net.id ?? net.tap) ?? false
            nets.append(try VirtioNet(tap: Tap(name: net.tap), mac: net.mac, mtu: net.mtu ?? 1500,
                                      rxRateLimiter: net.rxRateLimiter, txRateLimiter: net.txRateLimiter,
                                      mmds: reachesMmds ? mmds : nil, loop: loop, logger: logger))
        }
        self.nets = nets
        devices += nets as [any VirtioDevice]
        if let vsock = config.vsock {
            devices.append(try VirtioVsock(guestCid: vsock.guestCid, udsPath: vsock.udsPath, loop: loop, logger: logger))
        }
        rng = config.rng ? try VirtioRng(rateLimiter: config.rngRateLimiter, logger: logger) : nil
        if let rng { devices.append(rng) }
        let balloonDevice = try config.balloon.map { try VirtioBalloon($0, logger: logger) }
        if let balloonDevice { devices.append(balloonDevice) }
        for (fs, id) in zip(config.fs, config.fsIds) {
            do {
                devices.append(try VirtioFs(tag: fs.tag, socketPath: fs.socketPath, requestQueues: fs.requestQueues,
                                            queueSize: fs.queueSize, loop: loop, logger: logger))
            } catch {
                throw DeviceSetupError(device: "virtio-fs '\(id)' (tag '\(fs.tag)')", cause: error)
            }
        }
        let slots = devices.indices.map { VirtioMmioSlot(index: $0) }
        virtioSlots = slots
        var cmdline = config.kernelCmdline
        if config.virtioDiscovery == .cmdline {
            cmdline += slots.map { " " + $0.kernelParameter }.joined()
        }
        kernelCmdline = cmdline

        let direct = DirectBoot(kernel: kernelImage, initrd: initrd, cmdline: cmdline,
                                vcpuCount: config.vcpuCount, bootProtocol: config.bootProtocol,
                                acpiVirtioSlots: config.virtioDiscovery == .acpi ? slots : [])
        boot = try direct.load(into: memory)
        logger.debug("kernel \(boot.kernel.format.rawValue) loaded at 0x\(String(boot.kernel.loadStart, radix: 16))-0x\(String(boot.kernel.loadEnd, radix: 16)), entry 0x\(String(boot.entry, radix: 16)) via \(boot.bootProtocol.rawValue)")

        let lifecycle = self.lifecycle

        // Legacy devices: COM1, the i8042, the ACPI power register and the boot timer.
        let serialIrq = try EventFd()
        try vm.registerIrqfd(serialIrq, gsi: Serial8250.com1Irq)
        let serialOutput: ConsoleLog?
        switch config.serial {
        case .stdio: serialOutput = ConsoleLog(descriptor: OwnedFileDescriptor(dup(STDOUT_FILENO)))
        case .file(let path):
            serialOutput = try ConsoleLog(path: path, maxBytes: config.serialLogMaxBytes)
        case .none: serialOutput = nil
        }
        serial = Serial8250(output: serialOutput, interrupt: serialIrq)
        try pio.insert(serial, base: Serial8250.com1Base, length: Serial8250.registerCount)

        let keyboardIrq = try EventFd()
        try vm.registerIrqfd(keyboardIrq, gsi: I8042.keyboardIrq)
        i8042 = I8042(interrupt: keyboardIrq) { lifecycle.stop(.reset) }
        try pio.insert(i8042, base: I8042.dataPort, length: I8042.portSpan)
        try pio.insert(AcpiPowerRegisters { event in lifecycle.stop(event == .poweroff ? .poweroff : .reset) },
                       base: AcpiPowerRegisters.port, length: 1)
        try mmio.insert(BootTimer(logger: logger), base: BootTimer.address, length: BootTimer.size)

        var transports: [VirtioMmioTransport] = []
        for (device, slot) in zip(devices, slots) {
            let irq = try EventFd()
            try vm.registerIrqfd(irq, gsi: slot.gsi)
            let transport = try VirtioMmioTransport(device: device, memory: memory,
                                                    interrupt: VirtioInterrupt(eventFd: irq), logger: logger)
            try mmio.insert(transport, base: slot.base, length: VirtioMmioSlot.windowSize)
            try transport.registerIoeventfds(vm, base: slot.base)
            try transport.attach(to: loop)
            transports.append(transport)
        }
        virtioDevices = transports
        balloon = balloonDevice.flatMap { device in
            transports.first { $0.device === device }.map { (device, $0) }
        }

        // vCPUs: KVM's CPUID with our topology, boot registers for the chosen protocol.
        let supportedCpuid = try kvm.supportedCpuid()
        let supportedMsrs = try kvm.supportedMsrs()
        let topology = CpuTopology(vcpuCount: config.vcpuCount, smt: config.smt)
        let state = VcpuBootState(bootProtocol: boot.bootProtocol, entry: boot.entry)
        var runners: [VcpuRunner] = []
        for id in 0..<config.vcpuCount {
            let vcpu = try vm.createVcpu(id: id)
            try state.apply(to: vcpu, cpuid: topology.cpuid(for: UInt32(id), from: supportedCpuid),
                            supportedMsrs: supportedMsrs)
            runners.append(VcpuRunner(vcpu: vcpu, pio: pio, mmio: mmio, lifecycle: lifecycle, logger: logger))
        }
        self.runners = runners
        runners[0].onFirstRun = { [logger] in
            // processStart first: a host that never marked it (a library user) gets it set
            // here, not after `now`, which would wrap the difference.
            let start = ProcessClock.processStart
            let now = ProcessClock.now()
            if let instanceStart = ProcessClock.instanceStart {
                // InstanceStart came through the API: report the time since that request too.
                logger.info("first KVM_RUN \((now.wallNanos &- instanceStart.wallNanos) / 1000) us after InstanceStart (\((now.cpuNanos &- instanceStart.cpuNanos) / 1000) CPU us)")
            } else {
                ProcessClock.markInstanceStart()
            }
            logger.info("first KVM_RUN \((now.wallNanos &- start.wallNanos) / 1000) us after process start (\((now.cpuNanos &- start.cpuNanos) / 1000) CPU us)")
        }
    }

    /// Starts the event loop, the console input and the vCPU threads.
    public func start() throws {
        precondition(!started, "a MicroVM starts once")
        started = true
        if config.serial != .none {
            console = try ConsoleInput(serial: serial, loop: loop)
        }
        try loop.start()
        for runner in runners { try runner.start() }
    }

    /// Blocks until the guest or the host stops the VM.
    public func waitForExit() -> VmExitReason {
        lifecycle.waitForExit()
    }

    public func stop(_ reason: VmExitReason) {
        lifecycle.stop(reason)
    }

    public func sendCtrlAltDel() {
        i8042.sendCtrlAltDel()
    }

    /// Holds every vCPU out of the guest; returns once all are parked. Devices keep
    /// running (as in Firecracker), so host-side I/O completes while paused.
    public func pause() {
        lifecycle.pause(expectedVcpus: runners.count)
    }

    /// Lets the vCPUs enter the guest again.
    public func resume() {
        lifecycle.resume()
    }

    public var isPaused: Bool { lifecycle.isPaused }

    public enum DiskUpdateError: Error, CustomStringConvertible {
        case noSuchDisk(String)
        public var description: String {
            switch self {
            case .noSuchDisk(let id): return "no disk with the id '\(id)'"
            }
        }
    }

    /// Points the disk `id` at another file while the guest runs (same read-only mode),
    /// then tells the guest driver to re-read the capacity.
    public func replaceDisk(id: String, path: String) throws {
        guard let index = config.diskIds.firstIndex(of: id) else { throw DiskUpdateError.noSuchDisk(id) }
        let disk = config.disks[index]
        let backend = try BlockBackend(path: path, readOnly: disk.readOnly, direct: disk.direct)
        let block = blocks[index]
        let transport = virtioDevices[index]
        try transport.withDeviceLocked { _ in try block.replaceBackend(backend) }
        transport.configurationChanged()
    }

    /// Changes disk `id`'s rate limiter while the guest runs (PATCH /drives).
    public func updateDiskRateLimiter(id: String, _ update: RateLimiterUpdate) throws {
        guard let index = config.diskIds.firstIndex(of: id) else { throw DiskUpdateError.noSuchDisk(id) }
        blocks[index].rateLimiter.apply(update)
    }

    /// Changes network interface `index`'s rate limiters while the guest runs (PATCH
    /// /network-interfaces).
    public func updateNetRateLimiters(index: Int, rx: RateLimiterUpdate?, tx: RateLimiterUpdate?) {
        if let rx { nets[index].rxRateLimiter.apply(rx) }
        if let tx { nets[index].txRateLimiter.apply(tx) }
    }

    public enum BalloonError: Error, CustomStringConvertible {
        case none
        case statisticsNotEnabled
        case statisticsCannotBeSwitchedOff
        case tooLarge(UInt32, memoryMiB: Int)
        case hintingNotEnabled
        case notActive
        public var description: String {
            switch self {
            case .none: return "the VM has no balloon device"
            case .statisticsNotEnabled: return "balloon statistics were not enabled when the device was configured"
            case .statisticsCannotBeSwitchedOff: return "balloon statistics cannot be switched off after boot (use an interval of 1 or more)"
            case .tooLarge(let mib, let memory): return "amount_mib \(mib) is more than the VM's memory (\(memory) MiB)"
            case .notActive: return "the balloon's driver has not activated the device yet"
            case .hintingNotEnabled: return "free page hinting was not enabled when the balloon was configured (free_page_hinting)"
            }
        }
    }

    /// A new balloon target while the guest runs (PATCH /balloon): the driver is told
    /// through a configuration interrupt and inflates or deflates towards it.
    public func setBalloonTarget(amountMiB: UInt32) throws {
        guard let balloon else { throw BalloonError.none }
        guard Int(amountMiB) <= config.memoryMiB else { throw BalloonError.tooLarge(amountMiB, memoryMiB: config.memoryMiB) }
        balloon.transport.withDeviceLocked { _ in balloon.device.setTarget(amountMiB: amountMiB) }
        balloon.transport.configurationChanged()
    }

    /// Starts a free page hinting run (PATCH /balloon/hinting/start) or ends it
    /// (`/stop`): the driver is told through a configuration interrupt.
    public func startBalloonHinting(acknowledgeOnStop: Bool) throws {
        let balloon = try hintingBalloon()
        balloon.transport.withDeviceLocked { _ in balloon.device.startHinting(acknowledgeOnStop: acknowledgeOnStop) }
        balloon.transport.configurationChanged()
    }

    public func stopBalloonHinting() throws {
        let balloon = try hintingBalloon()
        balloon.transport.withDeviceLocked { _ in balloon.device.stopHinting() }
        balloon.transport.configurationChanged()
    }

    public func balloonHintingStatus() throws -> VirtioBalloon.HintingStatus {
        let balloon = try hintingBalloon()
        return balloon.transport.withDeviceLocked { _ in balloon.device.hintingStatus }
    }

    private func hintingBalloon() throws -> (device: VirtioBalloon, transport: VirtioMmioTransport) {
        guard let balloon else { throw BalloonError.none }
        guard balloon.device.config.freePageHinting else { throw BalloonError.hintingNotEnabled }
        // Firecracker answers DeviceNotActive: a command the driver cannot see yet would
        // leave the run waiting forever.
        guard balloon.transport.isActive else { throw BalloonError.notActive }
        return balloon
    }

    /// A new statistics polling interval (PATCH /balloon/statistics); statistics cannot be
    /// switched on or off after boot.
    public func setBalloonStatsInterval(seconds: UInt32) throws {
        guard let balloon else { throw BalloonError.none }
        try balloon.transport.withDeviceLocked { _ in
            guard balloon.device.config.statsPollingIntervalS > 0 else { throw BalloonError.statisticsNotEnabled }
            guard seconds > 0 else { throw BalloonError.statisticsCannotBeSwitchedOff }
            balloon.device.setStatsPollingInterval(seconds: seconds)
        }
    }

    /// The balloon's target and size and the guest's latest statistics.
    public func balloonStatistics() throws -> VirtioBalloon.Statistics {
        guard let balloon else { throw BalloonError.none }
        return try balloon.transport.withDeviceLocked { _ in
            guard balloon.device.config.statsPollingIntervalS > 0 else { throw BalloonError.statisticsNotEnabled }
            return balloon.device.currentStatistics
        }
    }

    /// The balloon's configuration as it is now (its target may have changed since boot).
    public var balloonConfig: VirtioBalloon.Config? {
        balloon.map { b in b.transport.withDeviceLocked { _ in b.device.config } }
    }

    /// Guest RAM touched since the last call, for each region (`track_dirty_pages`): KVM's
    /// log of the vCPUs' writes or'ed with the VMM's own, both cleared. For a complete
    /// picture the vCPUs must be paused and the devices quiet: a device's page is marked
    /// when the device takes it, just before its copy (an asynchronous block read marks
    /// again when it is reaped), so a diff snapshot quiesces the event loop first.
    public func takeDirtyPages() throws -> [(guestAddress: UInt64, bitmap: [UInt64])] {
        guard let own = memory.dirtyPages else { throw VmConfig.ValidationError.dirtyPages }
        return try memory.regions.indices.map { index in
            let kvm = try vm.dirtyLog(slot: memorySlots[index], pages: own.pageCounts[index])
            let vmm = own.take(region: index)
            return (memory.regions[index].guestAddress, zip(kvm, vmm).map { $0 | $1 })
        }
    }

    /// A consistent reading of the counters the metrics report.
    public func counters() -> MachineCounters {
        var result = MachineCounters()
        for runner in runners {
            for kind in VcpuExitCounters.Kind.allCases {
                result.vcpuExits[kind.metricName, default: 0] += runner.exits.value(kind)
            }
        }
        var diskIndex = 0
        var netIndex = 0
        for transport in virtioDevices {
            switch transport.withDeviceLocked({ $0.deviceCounters }) {
            case .block(let c):
                let id = config.diskIds[diskIndex]
                diskIndex += 1
                result.disks.append(.init(id: id, readBytes: c.readBytes, writeBytes: c.writtenBytes,
                                          requests: c.requests, failedRequests: c.failedRequests,
                                          rateLimiter: c.rateLimiter))
            case .net(let c):
                let id = config.nets[netIndex].id ?? config.nets[netIndex].tap
                netIndex += 1
                result.nets.append(.init(id: id, rxBytes: c.rxBytes, txBytes: c.txBytes, rxPackets: c.rxFrames,
                                         txPackets: c.txFrames, rxDropped: c.rxDropped, txDropped: c.txDropped,
                                         rxRateLimiter: c.rxRateLimiter, txRateLimiter: c.txRateLimiter))
                if let mmds = c.mmds { result.mmds = (result.mmds ?? MmdsCounters()) + mmds }
            case .rng(let c):
                result.entropy = .init(bytes: c.bytesServed, badRequests: c.badRequests, rateLimiter: c.rateLimiter)
            case .balloon(let c):
                result.balloon = c
            case .none:
                break
            }
        }
        return result
    }

    /// Stops everything and waits for the threads; restores the terminal.
    public func shutdown() {
        guard !shutDown else { return }
        shutDown = true
        lifecycle.stop(.vmmError("shut down by the VMM"))
        for runner in runners { runner.join() }
        console?.close()
        if started { loop.stop() }
        for transport in virtioDevices { transport.device.shutdown() }
    }

    deinit { shutdown() }
}
