import Foundation
import Devices
import OCI
@testable import Runtime
import TestSupport
import Testing

@Suite struct ConfigurationTests {
    func expectError(_ text: String, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try RuntimeConfiguration.parse(text, file: "c.toml")
            Issue.record("accepted: \(text)", sourceLocation: sourceLocation)
        } catch {
            #expect("\(error)".contains(fragment), "\(error)", sourceLocation: sourceLocation)
        }
    }

    /// Found by fuzz-toml (Fuzz/Regressions/toml): toml++ asserts (SIGABRT) on a table
    /// header whose key starts with a character no key can start with.
    @Test func tableHeaderWithoutAKeyIsRefusedNotACrash() throws {
        for header in ["[\u{FFFD}]", "[[ é]]", "[=]", "[.a]", "[ #]", "[\t{]"] {
            expectError("# comment\n\(header)\nx = 1\n", "c.toml: line 2: a table header must start with a key")
        }
        // Lines that only look like headers: inside arrays and multi-line strings.
        let config = try RuntimeConfiguration.parse("""
            [hypervisor.kata]
            kernel_params = \"\"\"
            [=] not a header
            \"\"\"
            [ "agent" . 'kata' ]
            dial_timeout = 9
            """)
        #expect(config.hypervisor.kernelParams == "[=] not a header\n")
        #expect(config.agent.dialTimeout == 9)
        #expect(TOMLHeaderCheck.badHeaderLine("x = [\n  [ {a = 1} ],\n]\n[a]\n") == nil)
        #expect(TOMLHeaderCheck.badHeaderLine("x = 'a [' # [=\n[ 'ok' ]\ny = \"\\\" [\"\n[.bad]\n") == 4)
    }

    @Test func defaultsWithoutAFile() throws {
        let config = try RuntimeConfiguration.parse("")
        #expect(config.hypervisor.defaultMemory == 2048)
        #expect(config.hypervisor.defaultVcpus == 1)
        #expect(config.agent.debugAgentSocket == nil)
        #expect(config.runtime.internetworkingModel == "tcfilter")
    }

    @Test func everyKey() throws {
        let config = try RuntimeConfiguration.parse("""
            [hypervisor.kata]
            path = "/usr/bin/ignored"
            kernel = "/k/vmlinux"
            initrd = "/k/initrd.cpio"
            kernel_params = "nokaslr quiet"
            default_vcpus = 2
            default_maxvcpus = 4
            default_memory = 256
            block_device_driver = "virtio-blk"
            disable_block_device_use = true
            enable_debug = true
            shared_fs = "virtio-fs"
            virtio_fs_daemon = "/opt/kata/libexec/virtiofsd"
            virtio_fs_cache = "never"
            virtio_fs_cache_size = 0
            virtio_fs_extra_args = ["--thread-pool-size=1", "-o", "announce_submounts"]
            enable_hugepages = true

            [agent.kata]
            dial_timeout = 90
            debug = true
            debug_agent_socket = "/run/agent.sock"

            [runtime]
            internetworking_model = "none"
            sandbox_cgroup_only = true
            enable_debug = true
            """)
        #expect(config.hypervisor.kernel == "/k/vmlinux")
        #expect(config.hypervisor.initrd == "/k/initrd.cpio")
        #expect(config.hypervisor.kernelParams == "nokaslr quiet")
        #expect(config.hypervisor.defaultVcpus == 2 && config.hypervisor.defaultMaxVcpus == 4)
        #expect(config.hypervisor.defaultMemory == 256)
        #expect(config.hypervisor.blockDeviceDriver == "virtio-blk")
        #expect(config.hypervisor.enableDebug && config.hypervisor.disableBlockDeviceUse)
        #expect(config.hypervisor.sharedFs == .virtioFs && config.hypervisor.virtioFsDaemon == "/opt/kata/libexec/virtiofsd")
        #expect(config.hypervisor.virtioFsCache == "none")  // Kata's "never" in virtiofsd's -o spelling
        #expect(config.hypervisor.virtioFsExtraArgs == ["--thread-pool-size=1", "-o", "announce_submounts"])
        #expect(config.hypervisor.enableHugepages)
        #expect(config.agent.dialTimeout == 90 && config.agent.debug)
        #expect(config.agent.debugAgentSocket == "/run/agent.sock")
        #expect(config.runtime.internetworkingModel == "none" && config.runtime.sandboxCgroupOnly && config.runtime.enableDebug)
    }

    @Test func badValuesOfOurKeysNameTheKey() {
        expectError("[hypervisor.qemux]\nkernel = \"/x\"", "[hypervisor.qemux]: unknown hypervisor (Kata's are acrn, clh")
        expectError("[hypervisor.qemu]\n[hypervisor.firecracker]\n", "[hypervisor.firecracker], [hypervisor.qemu]: one hypervisor table at most")
        expectError("[agent.other]\ndial_timeout = 3", "[agent.other]: unknown agent")
        expectError("[hypervisor.kata]\ndefault_memory = \"2G\"", "hypervisor.kata.default_memory: expected an integer")
        expectError("[hypervisor.kata]\ndefault_memory = 1", "hypervisor.kata.default_memory: 1 is out of range (64 to 1048576, or 0 for the default)")
        expectError("[hypervisor.kata]\ndefault_memory = -5", "hypervisor.kata.default_memory: -5 is out of range")
        expectError("[hypervisor.kata]\ndefault_vcpus = 4\ndefault_maxvcpus = 2", "default_maxvcpus: 2 is less than default_vcpus")
        expectError("[hypervisor.kata]\ndefault_maxvcpus = -1", "hypervisor.kata.default_maxvcpus: -1 is out of range")
        expectError("[hypervisor.kata]\ndefault_vcpus = \"two\"", "hypervisor.kata.default_vcpus: expected an integer")
        expectError("[hypervisor.kata]\ndefault_vcpus = inf", "hypervisor.kata.default_vcpus: inf is out of range")
        expectError("[hypervisor.kata]\nkernel = \"vmlinux\"", "hypervisor.kata.kernel: 'vmlinux' is not an absolute path")
        expectError("[hypervisor.kata]\nenable_debug = \"yes\"", "hypervisor.kata.enable_debug: expected true or false")
        expectError("[hypervisor.kata]\nblock_device_driver = \"virtio-foo\"", "hypervisor.kata.block_device_driver: 'virtio-foo' is not a block device driver")
        expectError("[runtime]\ninternetworking_model = \"bridged\"", "runtime.internetworking_model: 'bridged' is not an internetworking model")
        expectError("[agent.kata]\ndebug_agent_socket = \"relative.sock\"", "agent.kata.debug_agent_socket")
        expectError("[hypervisor.kata\nkernel=1", "c.toml: line")
        expectError("[hypervisor.kata]\nshared_fs = \"nfs\"", "hypervisor.kata.shared_fs: 'nfs' is not a shared filesystem")
        expectError("[hypervisor.kata]\nvirtio_fs_cache = \"metadata\"", "hypervisor.kata.virtio_fs_cache: 'metadata' is not a cache mode")
        expectError("[hypervisor.kata]\nvirtio_fs_cache_size = -1", "virtio_fs_cache_size: -1 is out of range")
        expectError("[hypervisor.kata]\nvirtio_fs_extra_args = [\"-f\", 3]", "virtio_fs_extra_args[1]: expected a string")
        expectError("[hypervisor.kata]\nvirtio_fs_daemon = \"virtiofsd\"", "virtio_fs_daemon: 'virtiofsd' is not an absolute path")
        // Under Kata's table names too, named as the file names them.
        expectError("[hypervisor.firecracker]\ndefault_memory = true", "hypervisor.firecracker.default_memory: expected an integer")
    }

    /// Kata's sizing rules for the keys it shares with us.
    @Test func kataSizingValues() throws {
        func hypervisor(_ body: String) throws -> RuntimeConfiguration.Hypervisor {
            try RuntimeConfiguration.parse("[hypervisor.firecracker]\n" + body).hypervisor
        }
        #expect(try hypervisor("default_vcpus = 0").defaultVcpus == 1)
        #expect(try hypervisor("default_vcpus = -1").defaultVcpus == min(SandboxSizing.hostCpuCount, VmLimits.maxVcpus))
        #expect(try hypervisor("default_vcpus = 1.5").defaultVcpus == 2)  // Kata 3 reads it as a float
        #expect(try hypervisor("default_vcpus = 4096").defaultVcpus == VmLimits.maxVcpus)
        #expect(try hypervisor("default_maxvcpus = 240").defaultMaxVcpus == VmLimits.maxVcpus)
        #expect(try hypervisor("default_memory = 0").defaultMemory == 2048)
        // The host's count stops at default_maxvcpus, whichever key comes first.
        #expect(try hypervisor("default_vcpus = -1\ndefault_maxvcpus = 1").defaultVcpus == 1)
        #expect(try hypervisor("default_maxvcpus = 1\ndefault_vcpus = -1").defaultVcpus == 1)
    }

    /// A Kata key we do not implement is ignored with one warning naming it, unless it is
    /// off anyway; a value Kata knows that we have no counterpart for is replaced, saying so.
    @Test func kataKeysWeDoNotImplementAreWarnings() throws {
        let config = try RuntimeConfiguration.parse("""
            jailer = "top-level"
            [hypervisor.qemu]
            machine_type = "q35"
            default_bridges = 1
            enable_iommu = false
            valid_hypervisor_paths = []
            block_device_driver = "virtio-scsi"
            shared_fs = "virtio-9p"
            virtio_fs_cache_size = 1024
            [factory]
            enable_template = true
            template_path = ""
            [agent.kata]
            kernel_modules = ["e1000e"]
            [runtime]
            internetworking_model = "macvtap"
            experimental = []
            """, file: "c.toml")
        #expect(config.hypervisor.blockDeviceDriver == "virtio-mmio" && config.hypervisor.sharedFs == nil)
        #expect(config.runtime.internetworkingModel == "tcfilter")
        let expected: Set = [
            "c.toml: jailer: not implemented by kata-swift; ignored",
            "c.toml: hypervisor.qemu.machine_type: not implemented by kata-swift; ignored",
            "c.toml: hypervisor.qemu.default_bridges: not implemented by kata-swift; ignored",
            "c.toml: hypervisor.qemu.block_device_driver: 'virtio-scsi' is not available in kata-swift; using virtio-blk over MMIO",
            "c.toml: hypervisor.qemu.shared_fs: 'virtio-9p' is not available in kata-swift; using virtio-fs when the daemon is there, else none",
            "c.toml: hypervisor.qemu.virtio_fs_cache_size: '1024' is not available in kata-swift; using no DAX window (0)",
            "c.toml: factory.enable_template: not implemented by kata-swift; ignored",
            "c.toml: agent.kata.kernel_modules: not implemented by kata-swift; ignored",
            "c.toml: runtime.internetworking_model: 'macvtap' is not available in kata-swift; using tcfilter",
        ]
        #expect(Set(config.warnings) == expected && config.warnings.count == expected.count, "\(config.warnings)")
    }

    /// Kata's rate limiter keys become the sandbox's token buckets, refilling every second:
    /// bits per second in bytes (rounded up), operations as they are, 0 for no limit.
    @Test func kataRateLimiterKeys() throws {
        let config = try RuntimeConfiguration.parse("""
            [hypervisor.firecracker]
            rx_rate_limiter_max_rate = 8000000
            tx_rate_limiter_max_rate = 0
            net_rate_limiter_ops_max_rate = 1000
            net_rate_limiter_ops_one_time_burst = 5000
            disk_rate_limiter_bw_max_rate = 80000001
            disk_rate_limiter_bw_one_time_burst = 16
            disk_rate_limiter_ops_max_rate = 0
            reclaim_guest_freed_memory = true
            """, file: "c.toml")
        let h = config.hypervisor
        #expect(config.warnings.isEmpty, "\(config.warnings)")
        // 8,000,000 bits/s: 1,000,000 bytes, which Kata's Firecracker driver reads as 1000-based
        // and rescales to 1024-based units: 1,048,576 bytes a second.
        #expect(h.netRxRateLimiter == RateLimiterConfig(bandwidth: TokenBucketConfig(size: 1_048_576, refillTimeMs: 1000),
                                                        ops: TokenBucketConfig(size: 1000, oneTimeBurst: 5000, refillTimeMs: 1000)))
        #expect(h.netTxRateLimiter == RateLimiterConfig(ops: TokenBucketConfig(size: 1000, oneTimeBurst: 5000, refillTimeMs: 1000)))
        #expect(h.diskRateLimiter == RateLimiterConfig(bandwidth: TokenBucketConfig(size: 10_000_001, oneTimeBurst: 2, refillTimeMs: 1000)))
        #expect(RuntimeConfiguration().hypervisor.diskRateLimiter.isUnlimited)
        #expect(h.reclaimGuestFreedMemory && !RuntimeConfiguration().hypervisor.reclaimGuestFreedMemory)
        #expect(KataRateLimits.rescaledTo1024(10_000_000) == 10_485_760 && KataRateLimits.rescaledTo1024(1_500) == 1_524)
        #expect(KataRateLimits.rescaledTo1024(999) == 999 && KataRateLimits.rescaledTo1024(.max) == .max)
        expectError("[hypervisor.clh]\ndisk_rate_limiter_ops_max_rate = -1", "hypervisor.clh.disk_rate_limiter_ops_max_rate")
        expectError("[hypervisor.firecracker]\nreclaim_guest_freed_memory = true\nenable_hugepages = true", "cannot be used with enable_hugepages")
        expectError("[hypervisor.firecracker]\nrx_rate_limiter_max_rate = \"fast\"", "rx_rate_limiter_max_rate")
    }

    /// A file in the shape Kata's configuration-fc.toml takes once installed (the keys and
    /// values its template sets): it parses, keeps what we share, and warns about the rest.
    @Test func aStockKataFirecrackerFileRuns() throws {
        let config = try RuntimeConfiguration.parse("""
            [hypervisor.firecracker]
            path = "/opt/kata/bin/firecracker"
            kernel = "/opt/kata/share/kata-containers/vmlinux.container"
            image = "/opt/kata/share/kata-containers/kata-containers.img"
            rootfs_type="ext4"
            enable_annotations = ["enable_iommu", "virtio_fs_extra_args", "kernel_params"]
            valid_hypervisor_paths = ["/opt/kata/bin/firecracker"]
            jailer_path = "/opt/kata/bin/jailer"
            valid_jailer_paths = ["/opt/kata/bin/jailer"]
            kernel_params = ""
            default_vcpus = 1
            default_maxvcpus = 0
            default_bridges = 1
            default_memory = 2048
            default_maxmemory = 0
            block_device_driver = "virtio-mmio"
            valid_entropy_sources = ["/dev/urandom","/dev/random",""]
            disable_selinux=false

            [factory]

            [agent.kata]
            kernel_modules=[]
            dial_timeout = 45

            [runtime]
            internetworking_model="tcfilter"
            disable_guest_seccomp=true
            sandbox_cgroup_only=false
            static_sandbox_resource_mgmt=true
            disable_guest_empty_dir=false
            experimental=[]
            """, file: "configuration-fc.toml")
        #expect(config.hypervisor.kernel == "/opt/kata/share/kata-containers/vmlinux.container")
        #expect(config.hypervisor.defaultVcpus == 1 && config.hypervisor.defaultMemory == 2048)
        #expect(config.hypervisor.blockDeviceDriver == "virtio-mmio" && config.agent.dialTimeout == 45)
        let ignored = config.warnings.map { $0.replacingOccurrences(of: "configuration-fc.toml: ", with: "") }
        #expect(Set(ignored) == [
            "hypervisor.firecracker.image: not implemented by kata-swift; ignored",
            "hypervisor.firecracker.rootfs_type: not implemented by kata-swift; ignored",
            "hypervisor.firecracker.enable_annotations: not implemented by kata-swift; ignored",
            "hypervisor.firecracker.valid_hypervisor_paths: not implemented by kata-swift; ignored",
            "hypervisor.firecracker.jailer_path: not implemented by kata-swift; ignored",
            "hypervisor.firecracker.valid_jailer_paths: not implemented by kata-swift; ignored",
            "hypervisor.firecracker.default_bridges: not implemented by kata-swift; ignored",
            "hypervisor.firecracker.valid_entropy_sources: not implemented by kata-swift; ignored",
            "runtime.disable_guest_seccomp: not implemented by kata-swift; ignored",
            "runtime.static_sandbox_resource_mgmt: not implemented by kata-swift; ignored",
        ], "\(ignored)")
    }

    @Test func searchOrder() throws {
        let dir = Fixtures.scratch.appendingPathComponent("config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let explicit = dir.appendingPathComponent("explicit.toml").path
        let fromEnv = dir.appendingPathComponent("env.toml").path
        try "[hypervisor.kata]\ndefault_memory = 300\n".write(toFile: explicit, atomically: true, encoding: .utf8)
        try "[hypervisor.kata]\ndefault_memory = 400\n".write(toFile: fromEnv, atomically: true, encoding: .utf8)
        let env = ["KATA_CONF_FILE": fromEnv]
        #expect(try RuntimeConfiguration.load(explicitPath: explicit, environment: env).hypervisor.defaultMemory == 300)
        let viaEnv = try RuntimeConfiguration.load(explicitPath: nil, environment: env)
        #expect(viaEnv.hypervisor.defaultMemory == 400 && viaEnv.source == fromEnv)
        #expect(throws: RuntimeConfiguration.ConfigError.self) {
            try RuntimeConfiguration.load(explicitPath: dir.appendingPathComponent("missing.toml").path, environment: [:])
        }
        // Kata's system paths, in order; none there: the defaults.
        let first = dir.appendingPathComponent("etc.toml").path, second = dir.appendingPathComponent("share.toml").path
        try "[hypervisor.qemu]\ndefault_memory = 500\n".write(toFile: second, atomically: true, encoding: .utf8)
        #expect(try RuntimeConfiguration.load(explicitPath: nil, environment: [:], systemPaths: [first, second]).hypervisor.defaultMemory == 500)
        try "[hypervisor.clh]\ndefault_memory = 600\n".write(toFile: first, atomically: true, encoding: .utf8)
        #expect(try RuntimeConfiguration.load(explicitPath: nil, environment: [:], systemPaths: [first, second]).hypervisor.defaultMemory == 600)
        #expect(try RuntimeConfiguration.load(explicitPath: nil, environment: env, systemPaths: [first, second]).hypervisor.defaultMemory == 400)
        let none = [dir.appendingPathComponent("a.toml").path, dir.appendingPathComponent("b.toml").path]
        #expect(try RuntimeConfiguration.load(explicitPath: nil, environment: [:], systemPaths: none) == RuntimeConfiguration())
        #expect(RuntimeConfiguration.systemPaths == ["/etc/kata-containers/configuration.toml", "/usr/share/defaults/kata-containers/configuration.toml"])
    }

    @Test func sizingAddsTheContainersLimits() throws {
        var hypervisor = RuntimeConfiguration.Hypervisor()
        hypervisor.defaultMemory = 512
        hypervisor.defaultVcpus = 1
        hypervisor.defaultMaxVcpus = 8
        #expect(try SandboxSizing(config: hypervisor, resources: nil, hostCpus: 2) == SandboxSizing(vcpus: 1, memoryMiB: 512))
        // A bundle may ask for anything: extreme limits are capped, never overflow.
        let huge = Spec.Resources(.init(memory: .init(.init(limit: Int64.max)), cpu: .init(.init(quota: Int64.max, period: 1))))
        #expect(try SandboxSizing(config: hypervisor, resources: huge, hostCpus: 2) == SandboxSizing(vcpus: 8, memoryMiB: VmLimits.maxMemoryMiB))
        let longPeriod = Spec.Resources(.init(memory: nil, cpu: .init(.init(quota: 1, period: UInt64.max))))
        #expect(try SandboxSizing(config: hypervisor, resources: longPeriod, hostCpus: 2).vcpus == 2)
        var resources = Spec.Resources(.init(memory: .init(.init(limit: 256 << 20)), cpu: .init(.init(quota: 150_000, period: 100_000))))
        #expect(try SandboxSizing(config: hypervisor, resources: resources, hostCpus: 2) == SandboxSizing(vcpus: 3, memoryMiB: 768))
        resources.memory = .init(.init(limit: (100 << 20) + 1))  // rounds up to the next MiB
        resources.cpu = .init(.init(quota: 2_000_000, period: 100_000))  // 20 CPUs, capped at default_maxvcpus
        #expect(try SandboxSizing(config: hypervisor, resources: resources, hostCpus: 2) == SandboxSizing(vcpus: 8, memoryMiB: 613))
        hypervisor.defaultMaxVcpus = 0  // the host's count
        #expect(try SandboxSizing(config: hypervisor, resources: resources, hostCpus: 2).vcpus == 2)
        resources.cpu = .init(.init(quota: -1, period: 100_000))  // unlimited
        resources.memory = .init(.init(limit: -1))
        #expect(try SandboxSizing(config: hypervisor, resources: resources, hostCpus: 2) == SandboxSizing(vcpus: 1, memoryMiB: 512))
    }

    /// A pod's VM is sized by the pod's totals that containerd's CRI annotates the sandbox with.
    @Test func sizingTakesThePodsAnnotations() throws {
        var hypervisor = RuntimeConfiguration.Hypervisor()
        hypervisor.defaultMemory = 256
        hypervisor.defaultVcpus = 1
        hypervisor.defaultMaxVcpus = 8
        let own = Spec.Resources(.init(memory: .init(.init(limit: 64 << 20)), cpu: .init(.init(quota: 50_000, period: 100_000))))
        let pod = [SandboxSizing.PodAnnotation.memory: "536870912", SandboxSizing.PodAnnotation.cpuQuota: "250000",
                   SandboxSizing.PodAnnotation.cpuPeriod: "100000"]
        #expect(try SandboxSizing(config: hypervisor, resources: own, annotations: pod, hostCpus: 8) == SandboxSizing(vcpus: 4, memoryMiB: 768))
        #expect(try SandboxSizing(config: hypervisor, resources: own, annotations: [:], hostCpus: 8) == SandboxSizing(vcpus: 2, memoryMiB: 320))
        // A pod without limits: "0" and "-1" add nothing.
        let unlimited = [SandboxSizing.PodAnnotation.memory: "0", SandboxSizing.PodAnnotation.cpuQuota: "-1",
                         SandboxSizing.PodAnnotation.cpuPeriod: "100000"]
        #expect(try SandboxSizing(config: hypervisor, resources: own, annotations: unlimited, hostCpus: 8) == SandboxSizing(vcpus: 1, memoryMiB: 256))
        #expect(throws: RuntimeError.self) {
            try SandboxSizing(config: hypervisor, resources: nil, annotations: [SandboxSizing.PodAnnotation.memory: "1G"], hostCpus: 8)
        }
        #expect(throws: RuntimeError.self) {
            try SandboxSizing(config: hypervisor, resources: nil, annotations: [SandboxSizing.PodAnnotation.cpuPeriod: "99999999999999999999"], hostCpus: 8)
        }
    }
}

extension ConfigurationTests {
    /// The example the docs tell users to copy parses and equals the defaults.
    /// Kata's default: virtio-fs when the daemon is there, the block path otherwise.
    @Test func sharedFsDefaultsToVirtioFsWhenTheDaemonExists() throws {
        var config = RuntimeConfiguration()
        #expect(config.hypervisor.sharedFs == nil)
        config.hypervisor.virtioFsDaemon = "/bin/sh"
        #expect(config.hypervisor.resolvedSharedFs == .virtioFs)
        config.hypervisor.virtioFsDaemon = "/nonexistent/virtiofsd"
        #expect(config.hypervisor.resolvedSharedFs == RuntimeConfiguration.SharedFs.none)
        config.hypervisor.sharedFs = .virtioFs
        #expect(config.hypervisor.resolvedSharedFs == .virtioFs)  // asked for: create then says the daemon is missing
    }

    @Test func theRootfsGoesOverVirtioFsOrAsADisk() throws {
        let directory = try Fixtures.scratchDirectory("rootfs")
        #expect(try RootfsDelivery.choose(rootfs: directory, debugAgent: false, sharedFs: .virtioFs, disableBlockDeviceUse: false) == .virtioFs)
        #expect(try RootfsDelivery.choose(rootfs: directory, debugAgent: false, sharedFs: .none, disableBlockDeviceUse: false) == .ext4Image)
        #expect(try RootfsDelivery.choose(rootfs: directory, debugAgent: true, sharedFs: .virtioFs, disableBlockDeviceUse: false) == .hostDirectory)
        #expect(try RootfsDelivery.choose(rootfs: directory, debugAgent: false, sharedFs: .virtioFs, disableBlockDeviceUse: true) == .virtioFs)
        #expect { try RootfsDelivery.choose(rootfs: directory, debugAgent: false, sharedFs: .none, disableBlockDeviceUse: true) } throws: {
            "\($0)".contains("shared_fs is none")
        }
        #expect(RootfsDelivery.virtioFs.usesDisk == false && RootfsDelivery.ext4Image.usesDisk && RootfsDelivery.blockDevice.usesDisk)
    }

    @Test func theDocumentedExampleIsTheDefaults() throws {
        let path = Fixtures.packageRoot.appendingPathComponent("docs/configuration.toml.example").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var parsed = try RuntimeConfiguration.parse(text, file: path)
        parsed.source = RuntimeConfiguration().source
        #expect(parsed == RuntimeConfiguration())
    }
}
