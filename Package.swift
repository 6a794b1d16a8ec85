// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "kata-swift",
    products: [
        .executable(name: "kata-vmm", targets: ["kata-vmm"]),
        .executable(name: "kata-bench", targets: ["kata-bench"]),
        .executable(name: "kata-runtime", targets: ["kata-runtime"]),
        .executable(name: "kata-agent", targets: ["kata-agent"]),
        .library(name: "Machine", targets: ["Machine"]),
        .library(name: "Runtime", targets: ["Runtime"]),
        // For the fuzz targets (Fuzz/Package.swift), which drive these layers directly.
        .library(name: "VMM", targets: ["VMM"]),
        .library(name: "Devices", targets: ["Devices"]),
        .library(name: "API", targets: ["API"]),
        .library(name: "AgentProtocol", targets: ["AgentProtocol"]),
        .library(name: "OCI", targets: ["OCI"]),
        .library(name: "HybridVsock", targets: ["HybridVsock"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        // No default traits: BinaryDelimitedStreams imports all of Foundation (and its 30 MB
        // of ICU data), which the static guest agent must not carry.
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0", traits: []),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
    ],
    targets: [
        // One inline wrapper per KVM ioctl and kvm_run field Swift cannot reach directly.
        .target(name: "CKVM"),
        // One inline wrapper per other Linux call Swift cannot make (TUN, setns, accept4,
        // termios, timerfd, fences) and the libc headers the Glibc module leaves out.
        .target(name: "CLinux"),
        // The Linux plumbing every layer shares, on swift-system: the one system error,
        // the owned descriptor, socket addresses, threads, signal waiting, directories and
        // atomic files. Small enough for the static agent.
        .target(
            name: "LinuxSupport",
            dependencies: ["CLinux", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // KVM wrappers, guest memory, direct kernel boot, vCPUs, event loop.
        .target(
            name: "VMM",
            dependencies: ["CKVM", "CLinux", "LinuxSupport", .product(name: "Logging", package: "swift-log"),
                           .product(name: "Atomics", package: "swift-atomics")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Firecracker's hybrid vsock handshake lines (CONNECT <port> / OK <port>): the vsock
        // device parses one and writes the other, the runtime's agent connection the reverse.
        .target(name: "HybridVsock", swiftSettings: [.swiftLanguageMode(.v6)]),
        // Device models: legacy (8250, i8042, boot timer, ACPI PM) and virtio over virtio-mmio
        // (block, net, vsock, rng).
        .target(
            name: "Devices",
            dependencies: ["VMM", "CLinux", "LinuxSupport", "HybridVsock", .product(name: "Logging", package: "swift-log")],
            swiftSettings: [.swiftLanguageMode(.v6)],
            // The block device's asynchronous engine (io_submit); the static agent must not link it.
            linkerSettings: [.linkedLibrary("aio")]
        ),
        // Checks on what the host's callers hand us: files read whole (size, regular file),
        // JSON documents (duplicate keys, NUL characters).
        .target(name: "HostInput", swiftSettings: [.swiftLanguageMode(.v6)]),
        // Assembles the VMM core and the devices into a runnable microVM.
        .target(
            name: "Machine",
            dependencies: ["VMM", "Devices", "CKVM", "CLinux", "LinuxSupport", "HostInput", .product(name: "Logging", package: "swift-log")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Firecracker-compatible HTTP API over a Unix socket (SwiftNIO) and JSON config file.
        .target(
            name: "API",
            dependencies: [
                "Machine",
                // Device-level configuration the API parses (rate limiters).
                "Devices",
                "HostInput",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The OCI runtime spec: one Codable model for the runtime and the agent, which keeps
        // members it does not know. FoundationEssentials only, so the static agent links it.
        .target(name: "OCI", swiftSettings: [.swiftLanguageMode(.v6)]),
        // Wire protocol between runtime and guest agent: ttrpc framing + protobuf messages.
        .target(
            name: "AgentProtocol",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The agent's post-clone child path (async-signal-safe C) and thin syscall wrappers.
        .target(name: "CAgentSpawn", path: "guest/agent-spawn"),
        // The guest agent's logic, a library so that the host's tests reach its plans, cgroups
        // and mounts: Server/ (ttrpc, RPC routing), Containers/, Processes/, Storage/,
        // Network/, System/ (PID 1 duties, logging, threads).
        .target(
            name: "AgentCore",
            dependencies: ["AgentProtocol", "CAgentSpawn", "CLinux", "OCI", "LinuxSupport"],
            path: "guest/agent-core",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The guest agent: PID 1 inside every sandbox VM (main.swift only). guest/build-initramfs.sh
        // links it as a static executable for the initramfs.
        .executableTarget(
            name: "kata-agent",
            dependencies: ["AgentCore"],
            path: "guest/agent",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The OCI runtime (kata-runtime): configuration, sandbox lifecycle, agent client.
        .target(
            name: "Runtime",
            dependencies: [
                "Machine",
                // The rate limiters Kata's keys configure.
                "Devices",
                "HostInput",
                "AgentProtocol",
                "OCI",
                // The hybrid vsock handshake to reach the agent through the VMM's socket.
                "HybridVsock",
                // setns, termios and accept4 wrappers (Network/, Console/, System/).
                "CLinux",
                "LinuxSupport",
                // AgentClient encodes and decodes the agent's messages itself.
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "kata-runtime",
            dependencies: [
                "Runtime",
                "OCI",
                "HostInput",
                "LinuxSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "kata-vmm",
            dependencies: [
                "Machine",
                "HostInput",
                "LinuxSupport",
                "API",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Measurements beside QEMU (and runc): start, boot, memory, creation rate, device
        // throughput, container start; the runner, the report, its tables and charts.
        .target(name: "Bench", dependencies: ["LinuxSupport"], swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(
            name: "kata-bench",
            dependencies: ["Bench", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(name: "BenchTests", dependencies: ["Bench", "TestSupport", "kata-bench", "kata-vmm"]),
        // Fixtures shared by the test targets: package paths, the probe guest, the shared kernel.
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: [.swiftLanguageMode(.v6)]),
        .testTarget(name: "HostInputTests", dependencies: ["HostInput"]),
        .testTarget(name: "OCITests", dependencies: ["OCI"]),
        .testTarget(name: "LinuxSupportTests", dependencies: ["LinuxSupport", "TestSupport"]),
        // The agent's container, process and cgroup plans on the host, without a VM.
        .testTarget(name: "AgentCoreTests", dependencies: ["AgentCore", "AgentProtocol", "OCI", "TestSupport", "CLinux"]),
        .testTarget(name: "VMMTests", dependencies: ["VMM", "CKVM", "CLinux", "LinuxSupport", "TestSupport"]),
        .testTarget(name: "DevicesTests", dependencies: ["Devices", "VMM", "CLinux", "LinuxSupport", "HybridVsock", "TestSupport"]),
        // MachineTests also holds the agent's end-to-end guest test (Runtime's AgentClient), so
        // that it runs serialized with the other Linux boots.
        .testTarget(name: "MachineTests", dependencies: ["Machine", "VMM", "Devices", "TestSupport", "kata-vmm", "Runtime", "AgentProtocol"]),
        .testTarget(name: "APITests", dependencies: ["API", "Machine", "LinuxSupport", "TestSupport", "kata-vmm"]),
        .testTarget(name: "AgentTests", dependencies: ["AgentProtocol", "Runtime", "TestSupport", "kata-agent"]),
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime", "Devices", "AgentProtocol", "OCI", "LinuxSupport", "TestSupport", "kata-runtime", "kata-agent"]),
    ],
    swiftLanguageModes: [.v5]
)
