import Testing
@testable import API

/// Our router against Firecracker's API surface: every path and method of its swagger file
/// (src/firecracker/swagger/firecracker.yaml, API 1.17), written down here as our own
/// table of facts, is either served or refused with a fault that names the missing
/// feature; anything else is an invalid request.
@Suite struct FirecrackerSurfaceTests {
    enum Expected { case served, refused(String) }

    /// The 38 operations, with ids filled in.
    static let operations: [(String, String, Expected)] = [
        ("GET", "/", .served),
        ("PUT", "/actions", .served),
        ("GET", "/balloon", .served),
        ("PUT", "/balloon", .served),
        ("PATCH", "/balloon", .served),
        ("GET", "/balloon/statistics", .served),
        ("PATCH", "/balloon/statistics", .served),
        ("PATCH", "/balloon/hinting/start", .served),
        ("GET", "/balloon/hinting/status", .served),
        ("PATCH", "/balloon/hinting/stop", .served),
        ("PUT", "/boot-source", .served),
        ("PUT", "/cpu-config", .refused("CPU template")),
        ("PUT", "/drives/rootfs", .served),
        ("PATCH", "/drives/rootfs", .served),
        ("PUT", "/pmem/pmem0", .refused("virtio-pmem")),
        ("PATCH", "/pmem/pmem0", .refused("virtio-pmem")),
        ("PUT", "/logger", .served),
        ("GET", "/machine-config", .served),
        ("PUT", "/machine-config", .served),
        ("PATCH", "/machine-config", .served),
        ("PUT", "/metrics", .served),
        ("PUT", "/mmds", .served),
        ("PATCH", "/mmds", .served),
        ("GET", "/mmds", .served),
        ("PUT", "/mmds/config", .served),
        ("PUT", "/entropy", .served),
        ("PUT", "/serial", .served),
        ("PUT", "/hotplug/memory", .refused("memory hotplug")),
        ("PATCH", "/hotplug/memory", .refused("memory hotplug")),
        ("GET", "/hotplug/memory", .refused("memory hotplug")),
        ("PUT", "/network-interfaces/eth0", .served),
        ("PATCH", "/network-interfaces/eth0", .served),
        ("PUT", "/snapshot/create", .refused("snapshotting")),
        ("PUT", "/snapshot/load", .refused("snapshotting")),
        ("GET", "/version", .served),
        ("PATCH", "/vm", .served),
        ("GET", "/vm/config", .served),
        ("PUT", "/vsock", .served),
    ]

    @Test func everyFirecrackerOperationIsServedOrRefusedByName() throws {
        #expect(Self.operations.count == 38)
        var served: [ApiEndpoint] = []
        for (method, path, expected) in Self.operations {
            switch expected {
            case .served:
                let endpoint = try ApiEndpoint.route(method: method, uri: path)
                #expect(!served.contains(endpoint), "\(method) \(path) routes to \(endpoint) twice")
                served.append(endpoint)
            case .refused(let feature):
                do {
                    let endpoint = try ApiEndpoint.route(method: method, uri: path)
                    Issue.record("\(method) \(path) routed to \(endpoint)")
                } catch let error as ApiError {
                    #expect(error.message.hasPrefix("\(method) \(path): "), "\(error.message)")
                    #expect(error.message.contains(feature) && error.message.hasSuffix("is not supported by kata-vmm"),
                            "\(method) \(path): \(error.message)")
                }
            }
        }
        #expect(served.count == 30)
    }

    /// Methods Firecracker does not define on those paths, and paths it does not have, are
    /// invalid requests, not "not supported" features.
    @Test func otherMethodsAndPathsAreInvalidRequests() {
        for (method, path) in [("POST", "/balloon"), ("PUT", "/balloon/statistics"), ("GET", "/balloon/other"), ("GET", "/balloon/hinting/start"),
                               ("PATCH", "/balloon/hinting/status"), ("PUT", "/balloon/other"), ("GET", "/snapshot/create"),
                               ("PUT", "/snapshot/delete"), ("PUT", "/hotplug/cpu"), ("GET", "/pmem/x"), ("PUT", "/pmem"),
                               ("PATCH", "/mmds/config"), ("PUT", "/mmds/config/x"), ("DELETE", "/vm"), ("GET", "/serial")] {
            #expect {
                try ApiEndpoint.route(method: method, uri: path)
            } throws: { error in
                (error as? ApiError)?.message == "Invalid request method and/or path: \(method) \(path)"
            }
        }
    }
}
