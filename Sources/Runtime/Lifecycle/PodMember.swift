import AgentProtocol
import Foundation
import Glibc
import LinuxSupport
import OCI

/// A pod's app container in its sandbox's VM, as Kata runs one: no VM or monitor of its own.
/// Its rootfs and volumes are bound into the sandbox's running share (virtiofsd sees them
/// by mount propagation), it joins the sandbox's IPC and UTS namespaces in the guest, and
/// the VM's network is the pod's, so nothing is plumbed. Its delete removes it from the
/// guest and unbinds what it bound, and leaves the sandbox running.
extension ContainerLifecycle {
    func createMember(_ record: inout ContainerRecord, of sandbox: ContainerRecord, bundle: OCIBundle, terminal: Bool,
                      options: CreateOptions) throws -> Int32 {
        // The VM is the pod's network namespace: joining the sandbox's is what a member does.
        let namespaces = (bundle.spec.linux?.namespaces ?? []).filter { $0.type != "network" }
        let shared = try NamespaceGuard.check(namespaces, containers: otherContainers(than: record.id), setsUpNetworking: false,
                                              sharesWithSandbox: true)
        record.sandboxId = sandbox.id
        record.agentSocket = sandbox.agentSocket
        record.agentViaHybridVsock = sandbox.agentViaHybridVsock
        record.monitor = sandbox.monitor
        record.rootfsDelivery = .virtioFs
        record.sandboxBinds = []
        try AtomicFile.write(bundle.configData, to: record.configCopyPath)
        try store.save(record)

        let guestRoot = GuestSpec.sharedFsGuestMount + "/" + GuestSpec.sharedRootfsName(containerId: record.id)
        var guestSpec = GuestSpec(bundle.spec, containerId: record.id, guestRoot: guestRoot, rewriteMounts: true, sharesDirectories: true)
        guestSpec.joinSandboxNamespaces(shared)
        guestSpec.warnings.forEach(context.warn)
        let share = SharedDirectory(path: sandbox.sharedDirectoryPath)
        let binds = [(bundle.rootfsPath, GuestSpec.sharedRootfsName(containerId: record.id), false, true)]
            + guestSpec.sharedVolumes.map { ($0.hostPath, $0.name, $0.readOnly, $0.recursive) }
        for (source, name, readOnly, recursive) in binds {
            // Recorded first: a bind that half-happened is still unbound by delete.
            record.sandboxBinds?.append(name)
            try store.save(record)
            try share.bind(source, at: name, readOnly: readOnly, recursive: recursive)
        }

        try createInGuest(record, guestSpec: guestSpec, storages: [])

        guard mkfifo(record.startFifoPath, 0o600) == 0 else { throw SystemError("mkfifo \(record.startFifoPath)") }
        let shim = try startShim(record, execId: "", terminal: terminal, consoleSocket: options.consoleSocket,
                                 stdio: options.stdio, startFifo: record.startFifoPath, consoleSize: bundle.spec.process?.consoleSize)
        record.initProcess = shim
        try store.save(record)
        var state = StateStore.ociState(record)
        state.status = .creating
        let runner = HookRunner(warn: context.warn)
        for hook in [HookKind.prestart, .createRuntime, .createContainer] {
            try runner.run(hook, hooks: bundle.spec.hooks, state: state)
        }
        record.status = .created
        try store.save(record)
        if let pidFile = options.pidFile { try Self.writePidFile(pidFile, pid: shim.pid) }
        return shim.pid
    }

    /// A member's share of its delete: out of the guest while the sandbox's VM runs, its
    /// binds out of the sandbox's share. The VM, its monitor, its daemon stay.
    func destroyMember(_ record: ContainerRecord, sandbox: String) {
        if record.monitor?.isAlive ?? false { removeFromGuest(record) }
        killShims(record)
        let share = SharedDirectory(path: store.directory(of: sandbox) + "/shared")
        for name in (record.sandboxBinds ?? []).reversed() where FileManager.default.fileExists(atPath: share.bindsPath) {
            do { try share.unbind(name) } catch { context.warn("container \(record.id): \(name) stays in sandbox \(sandbox)'s share: \(error)") }
        }
    }
}
