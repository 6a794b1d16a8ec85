import Foundation
import Glibc

/// What `kata-runtime env`/`check` verifies on the host: KVM access, the configured kernel
/// and initrd, vsock (hybrid: only Unix sockets are needed), tap creation, mke2fs, virtiofsd.
public enum HostCheck {
    public struct Result: Equatable {
        public var name: String
        public var ok: Bool
        public var detail: String
    }

    public static func run(config: RuntimeConfiguration) -> [Result] {
        var results: [Result] = []
        let kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC)
        let kvmDetail = kvm >= 0 ? "/dev/kvm opens read-write" : "/dev/kvm: " + String(cString: strerror(errno))
        results.append(Result(name: "kvm", ok: kvm >= 0, detail: kvmDetail))
        if kvm >= 0 { close(kvm) }
        let kernel = config.hypervisor.kernel
        results.append(Result(name: "kernel", ok: access(kernel, R_OK) == 0, detail: kernel))
        if let initrd = config.hypervisor.initrd {
            results.append(Result(name: "initrd", ok: access(initrd, R_OK) == 0, detail: initrd))
        }
        results.append(Result(name: "vsock", ok: true, detail: "hybrid vsock over a Unix socket (no vhost-vsock needed)"))
        let tun = open("/dev/net/tun", O_RDWR | O_CLOEXEC)
        let tunDetail = tun >= 0 ? "/dev/net/tun opens" : "/dev/net/tun: " + String(cString: strerror(errno))
        results.append(Result(name: "tap", ok: tun >= 0, detail: tunDetail))
        if tun >= 0 { close(tun) }
        let mke2fs = (["/usr/sbin/mke2fs", "/sbin/mke2fs"] as [String]).first { access($0, X_OK) == 0 }
        results.append(Result(name: "mke2fs", ok: mke2fs != nil, detail: mke2fs ?? "not found (install e2fsprogs)"))
        if config.hypervisor.resolvedSharedFs == .virtioFs {
            let daemon = config.hypervisor.virtioFsDaemon
            let ok = access(daemon, X_OK) == 0
            results.append(Result(name: "virtio-fs", ok: ok, detail: ok ? daemon : "\(daemon): not executable (install virtiofsd, or set shared_fs = \"none\")"))
        }
        if let socket = config.agent.debugAgentSocket {
            results.append(Result(name: "debug agent socket", ok: access(socket, F_OK) == 0, detail: socket))
        }
        return results
    }
}

extension RuntimeConfiguration {
    /// The effective configuration, key by key, as `env` prints it.
    public var summary: [String: String] {
        var values: [String: String] = [
            "hypervisor.kata.kernel": hypervisor.kernel,
            "hypervisor.kata.initrd": hypervisor.initrd ?? "",
            "hypervisor.kata.kernel_params": hypervisor.kernelParams,
            "hypervisor.kata.default_vcpus": String(hypervisor.defaultVcpus),
            "hypervisor.kata.default_maxvcpus": String(hypervisor.defaultMaxVcpus),
            "hypervisor.kata.default_memory": String(hypervisor.defaultMemory),
            "hypervisor.kata.block_device_driver": hypervisor.blockDeviceDriver,
            "hypervisor.kata.disable_block_device_use": String(hypervisor.disableBlockDeviceUse),
            "hypervisor.kata.enable_debug": String(hypervisor.enableDebug),
            "hypervisor.kata.shared_fs": hypervisor.resolvedSharedFs.rawValue,
            "hypervisor.kata.virtio_fs_daemon": hypervisor.virtioFsDaemon,
            "hypervisor.kata.virtio_fs_cache": hypervisor.virtioFsCache,
            "agent.kata.dial_timeout": String(agent.dialTimeout),
            "agent.kata.debug": String(agent.debug),
            "runtime.internetworking_model": runtime.internetworkingModel,
            "runtime.sandbox_cgroup_only": String(runtime.sandboxCgroupOnly),
            "runtime.enable_debug": String(runtime.enableDebug),
        ]
        if let socket = agent.debugAgentSocket { values["agent.kata.debug_agent_socket"] = socket }
        return values
    }
}
