import ArgumentParser

/// One subcommand per benchmark, and `all`; each runs its benchmarks through `BenchRun`.
extension KataBench {
    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "exec of the VMM to its API socket accepting (QEMU: its QMP socket, -S), wall and CPU.")
        @OptionGroup var options: CommonOptions
        func run() throws { try BenchRun.run(options, start: true, boot: false, memory: false) }
    }

    struct Boot: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Process start to the guest's boot marker, and CPU time.")
        @OptionGroup var options: CommonOptions
        func run() throws { try BenchRun.run(options, boot: true, memory: false) }
    }

    struct Memory: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "RSS/PSS after boot, idle, minus the guest's own pages.")
        @OptionGroup var options: CommonOptions
        func run() throws { try BenchRun.run(options, boot: false, memory: true) }
    }

    struct Creation: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "VMs up per second, started back to back by 1, 2, 4, 8 workers at once.")
        @OptionGroup var options: CommonOptions
        func run() throws { try BenchRun.run(options, boot: false, memory: false, creation: true) }
    }

    struct Devices: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "virtio-blk and vsock throughput in a real Linux guest (--kernel), beside the host.")
        @OptionGroup var options: CommonOptions
        func validate() throws {
            guard options.kernel != nil else { throw ValidationError("devices needs a real guest kernel: --kernel") }
        }
        func run() throws { try BenchRun.run(options, boot: false, memory: false, devices: true) }
    }

    struct Fs: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "File throughput on virtio-fs and on an ext4 virtio-blk disk in a real Linux guest (--kernel), beside QEMU and the host.")
        @OptionGroup var options: CommonOptions
        func validate() throws {
            guard options.kernel != nil else { throw ValidationError("fs needs a real guest kernel: --kernel") }
        }
        func run() throws { try BenchRun.run(options, boot: false, memory: false, fs: true) }
    }

    struct Container: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "kata-runtime run of a busybox `true` bundle, beside runc run of the same bundle.")
        @OptionGroup var options: CommonOptions
        func run() throws { try BenchRun.run(options, boot: false, memory: false, container: true) }
    }

    struct All: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start, boot, memory and creation rate; device and file throughput with --kernel; container start with --runtime-config.")
        @OptionGroup var options: CommonOptions
        func run() throws {
            try BenchRun.run(options, start: true, boot: true, memory: true, creation: true, devices: options.kernel != nil,
                           fs: options.kernel != nil, container: options.runtimeConfig != nil)
        }
    }
}
