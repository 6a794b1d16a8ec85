import AgentProtocol
import Foundation
import Devices
import Glibc
import Logging
import Machine
import OCI
import LinuxSupport

/// The per-sandbox monitor: a daemon (`kata-runtime` re-executed, own session) that hosts
/// the microVM in-process, waits for the guest agent, prepares the sandbox (hostname,
/// network), reports readiness to `create` on a pipe, and then holds the VM until `delete`
/// sends SIGTERM (or the guest powers off). With `debug_agent_socket` the VM step is
/// replaced by a kata-agent already listening on the host: everything else is the same.
public struct SandboxMonitor {
    public let store: StateStore
    public let id: String
    public let config: RuntimeConfiguration
    public let logger: Logger

    public init(store: StateStore, id: String, config: RuntimeConfiguration, logger: Logger) {
        self.store = store
        self.id = id
        self.config = config
        self.logger = logger
    }

    /// Runs until the sandbox ends; returns the monitor's exit status. `readyFd` gets one
    /// line: "ready" or "error: <why>". `creatorFd` is the `CreatorLink`: if `create` goes
    /// away before confirming, the monitor exits at once, whatever it is doing (booting
    /// included): the VM is this process's, and goes with it.
    public func run(readyFd: Int32, creatorFd: Int32 = CreatorLink.monitorFd) -> Int32 {
        let stopSignals = SignalWaiter.block([SIGTERM, SIGINT, SIGHUP])
        signal(SIGPIPE, SIG_IGN)
        CreatorLink.watch(creatorFd, logger: logger) { _exit(1) }

        let record: ContainerRecord
        let spec: Spec
        do {
            record = try store.load(id)
            guard let data = FileManager.default.contents(atPath: record.configCopyPath) else {
                throw RuntimeError("\(record.configCopyPath): missing")
            }
            spec = try OCIBundle.decode(data, file: record.configCopyPath)
        } catch {
            report(readyFd, "error: \(error)")
            return 1
        }

        var vm: MicroVM?
        do {
            if let netns = record.networkNamespace, !record.taps.isEmpty {
                try NetworkNamespace.enter(netns)
            }
            if config.agent.debugAgentSocket == nil {
                vm = try bootVM(record: record, spec: spec)
            }
            let deadline = Date().addingTimeInterval(Double(config.agent.dialTimeout))
            let session = try AgentSession.waitForAgent(endpoint: record.agentEndpoint, deadline: deadline) {
                guard let vm, let reason = vm.lifecycle.reason else { return nil }
                return "\(reason)"
            }
            try prepareSandbox(session: session, record: record, spec: spec)
            session.close()
        } catch {
            logger.error("sandbox \(id): \(error)")
            report(readyFd, "error: \(error)")
            vm?.shutdown()
            return 1
        }
        report(readyFd, "ready")
        logger.info("sandbox \(id) ready")

        // A caller that removes the runtime's root without `delete` (a crashed containerd,
        // a cleanup script) must not leave the sandbox running: the state file going away
        // ends it, and its process shims with it.
        let orphaned = { [store, id] () -> Bool in !store.exists(id) }
        let reapShims = { () -> Void in
            for shim in [record.initProcess].compactMap({ $0 }) where shim.isAlive { kill(shim.pid, SIGKILL) }
        }
        if let vm {
            do {
                try stopSignals.handOff { signal in vm.stop(.signal(signal)) }
            } catch {
                logger.error("sandbox \(id): no thread for the stop signals: \(error)")
            }
            StateWatcher.start(every: 2, isOrphaned: orphaned) {
                logger.warning("sandbox \(id): its state was removed without delete; stopping")
                vm.stop(.signal(SIGTERM))
            }
            let reason = vm.waitForExit()
            logger.info("sandbox \(id): VM stopped: \(reason)")
            vm.shutdown()
            if orphaned() { reapShims() }
            return 0
        }
        StateWatcher.start(every: 2, isOrphaned: orphaned) {
            logger.warning("sandbox \(id): its state was removed without delete; stopping")
            kill(getpid(), SIGTERM)
        }
        let signal = stopSignals.next()
        logger.info("sandbox \(id): stopped by signal \(signal)")
        if orphaned() { reapShims() }
        return 0
    }

    func report(_ fd: Int32, _ line: String) {
        _ = try? FileDescriptors.writeAll(fd, Array((line + "\n").utf8))
        close(fd)
    }

    /// The VM: the configured kernel and initrd, the sizing rule, the rootfs disk, hybrid
    /// vsock for the agent, virtio-rng, a NIC per tap, the share's virtio-fs, serial to
    /// console.log.
    func bootVM(record: ContainerRecord, spec: Spec) throws -> MicroVM {
        let hypervisor = config.hypervisor
        let sizing = try SandboxSizing(config: hypervisor, resources: spec.linux?.resources, annotations: spec.annotations)
        var cmdline = VmConfig.defaultCmdline
        if !hypervisor.kernelParams.isEmpty { cmdline += " " + hypervisor.kernelParams }
        if config.agent.debug || hypervisor.enableDebug { cmdline += " agent.verbose" }
        var vmConfig = VmConfig(kernelPath: hypervisor.kernel, initrdPath: hypervisor.initrd, cmdline: cmdline,
                                vcpuCount: sizing.vcpus, memoryMiB: sizing.memoryMiB, serial: .file(record.consoleLogPath))
        if record.virtiofsd != nil {
            vmConfig.fs = [FsConfig(tag: GuestSpec.sharedFsTag, socketPath: record.virtiofsSocketPath, id: GuestSpec.sharedFsTag)]
        }
        if let delivery = record.rootfsDelivery, delivery.usesDisk {
            let image = delivery == .blockDevice ? record.rootfs : record.rootfsImagePath
            // Writable even for `root.readonly`: as runc does, the agent creates the spec's
            // mount points first and remounts the container's / read-only last.
            var disk = DiskConfig(path: image, readOnly: false, id: RootfsImage.diskSerial)
            disk.rateLimiter = hypervisor.diskRateLimiter
            vmConfig.disks = [disk]
        }
        vmConfig.serialLogMaxBytes = hypervisor.consoleLogMaxBytes
        if hypervisor.enableHugepages {
            vmConfig.hugePages = true
            vmConfig.memoryMiB += vmConfig.memoryMiB % 2  // whole 2 MiB pages, rounded up as Kata does
        }
        vmConfig.vsock = VsockConfig(guestCid: 3, udsPath: record.vsockSocketPath)
        vmConfig.rng = true
        if hypervisor.reclaimGuestFreedMemory {
            vmConfig.balloon = VirtioBalloon.Config(amountMiB: 0, freePageReporting: true)
        }
        let interfaces = NetworkPlan.load(from: record.stateDir)
        vmConfig.nets = interfaces.map { interface in
            var net = NetConfig(tap: interface.tap, mac: interface.macBytes)
            net.rxRateLimiter = hypervisor.netRxRateLimiter
            net.txRateLimiter = hypervisor.netTxRateLimiter
            return net
        }
        logger.info("sandbox \(id): booting \(hypervisor.kernel) with \(sizing.vcpus) vCPU(s), \(sizing.memoryMiB) MiB")
        let vm = try MicroVM(config: vmConfig, logger: logger)
        try vm.start()
        return vm
    }

    /// CreateSandbox and the guest's network (interfaces and routes from the plan).
    func prepareSandbox(session: AgentSession, record: ContainerRecord, spec: Spec) throws {
        var request = Grpc_CreateSandboxRequest()
        request.hostname = spec.hostname ?? ""
        request.sandboxID = id
        if record.virtiofsd != nil {
            var share = Grpc_Storage()
            share.driver = "virtio-fs"
            share.source = GuestSpec.sharedFsTag
            share.fstype = "virtiofs"
            share.mountPoint = GuestSpec.sharedFsGuestMount
            request.storages = [share]
        }
        try session.call("CreateSandbox") { client in try client.createSandbox(request) }
        guard config.agent.debugAgentSocket == nil else { return }
        let plan = NetworkPlan.load(from: record.stateDir)
        for (index, interface) in plan.enumerated() {
            var update = Grpc_UpdateInterfaceRequest()
            update.interface = interface.agentInterface(guestDevice: "eth\(index)")
            try session.call("UpdateInterface") { client in try client.updateInterface(update) }
        }
        let routes = plan.flatMap { $0.routes }
        if !routes.isEmpty {
            var update = Grpc_UpdateRoutesRequest()
            var list = Grpc_Routes()
            list.routes = routes
            update.routes = list
            try session.call("UpdateRoutes") { client in try client.updateRoutes(update) }
        }
    }
}

/// A thread that checks, every few seconds, whether the sandbox's state still exists.
enum StateWatcher {
    static func start(every seconds: UInt32, isOrphaned: @escaping () -> Bool, then stop: @escaping () -> Void) {
        // Without the thread the sandbox still stops with delete; it only loses this check.
        _ = try? PosixThread.start(detached: true, stackSize: 256 << 10) {
            while !isOrphaned() { sleep(seconds) }
            stop()
        }
    }
}
