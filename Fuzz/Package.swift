// swift-tools-version:6.1
// The libFuzzer targets (scripts/fuzz.sh builds and runs them). A package of its own so
// that only these executables link libFuzzer's main; the main package's code is built
// with the same coverage and address-sanitizer instrumentation through the dependency.
import PackageDescription

/// One libFuzzer executable: `Sources/<name>/<Name>.swift` defines LLVMFuzzerTestOneInput.
func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + dependencies)
}

let main = "kata-swift"

let package = Package(
    name: "kata-swift-fuzz",
    dependencies: [
        .package(name: main, path: ".."),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0", traits: []),
    ],
    targets: [
        .target(name: "CFuzzDriver"),
        .target(name: "FuzzSupport", dependencies: [
            "CFuzzDriver",
            .product(name: "Devices", package: main),
            .product(name: "VMM", package: main),
            .product(name: "Logging", package: "swift-log"),
        ]),
        fuzzTarget("fuzz-virtqueue", []),
        fuzzTarget("fuzz-mmio", []),
        fuzzTarget("fuzz-blk", []),
        fuzzTarget("fuzz-net", []),
        fuzzTarget("fuzz-vsock", []),
        fuzzTarget("fuzz-rng", []),
        fuzzTarget("fuzz-mmds", []),
        fuzzTarget("fuzz-balloon", []),
        fuzzTarget("fuzz-vsock-connect", [.product(name: "HybridVsock", package: main)]),
        fuzzTarget("fuzz-ttrpc", [
            .product(name: "AgentProtocol", package: main),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ]),
        fuzzTarget("fuzz-api", [.product(name: "API", package: main), .product(name: "Machine", package: main)]),
        fuzzTarget("fuzz-config-file", [.product(name: "API", package: main), .product(name: "Machine", package: main)]),
        // The one OCI model both the runtime and the agent decode with.
        fuzzTarget("fuzz-oci", [.product(name: "Runtime", package: main), .product(name: "OCI", package: main)]),
        fuzzTarget("fuzz-toml", [.product(name: "Runtime", package: main)]),
        fuzzTarget("fuzz-kernel", []),
        fuzzTarget("fuzz-vhost-user", []),
    ],
    swiftLanguageModes: [.v5]
)
