@testable import API
import Foundation
import Machine
import Testing

/// The JSON layer and the models without a VM: strict decoding, routing, serialization,
/// metrics deltas, and the round trip config file -> VmConfig -> GET /vm/config.
@Suite struct ApiModelTests {
    func json(_ text: String) throws -> JSONValue { try JSONValue.parse(Data(text.utf8)) }

    /// The logger's module filter against swift-log's file ids ("Module/File.swift").
    @Test func moduleFilterMatchesWholeModulesAndFiles() {
        #expect(LogSink.origin("Devices/VirtioNet.swift", isIn: nil))
        #expect(LogSink.origin("Devices/VirtioNet.swift", isIn: "Devices"))
        #expect(LogSink.origin("Devices/VirtioNet.swift", isIn: "Devices/VirtioNet"))
        #expect(!LogSink.origin("Devices/VirtioNetwork.swift", isIn: "Devices/VirtioNet"))
        #expect(!LogSink.origin("DevicesExtra/A.swift", isIn: "Devices"))
        #expect(!LogSink.origin("VMM/Vcpu.swift", isIn: "Devices"))
        #expect(VmConfig.LogConfig.moduleError("Devices::VirtioNet") == nil && VmConfig.LogConfig.moduleError("kata_vmm") == nil)
        for bad in ["", "api_server", "Devices::", "Devices::a::b", "::Devices", "Devices::Virtio/Net", "devices"] {
            #expect(VmConfig.LogConfig.moduleError(bad) != nil, "\(bad)")
        }
    }

    @Test func jsonTypesAreKeptApart() throws {
        #expect(try json("true") == .bool(true))
        #expect(try json("1") == .int(1))
        #expect(try json("1.5") == .double(1.5))
        #expect(try json("\"1\"") == .string("1"))
        #expect(try json("null") == .null)
        #expect(try json(#"{"a":[1,{"b":false}]}"#) == .object(["a": .array([.int(1), .object(["b": .bool(false)])])]))
        #expect(throws: ApiError.self) { try json("{") }
        #expect(throws: ApiError.self) { try json("") }
    }

    @Test func serializationEscapesAndSortsKeys() throws {
        let value = JSONValue.object(["b": .string("q\"\\\n\u{1}é"), "a": .array([.int(-3), .bool(true), .null])])
        #expect(value.serialized == #"{"a":[-3,true,null],"b":"q\"\\\n\u0001é"}"#)
        // And it parses back to the same value.
        #expect(try JSONValue.parse(Data(value.serialized.utf8)) == value)
    }

    @Test func strictObjectNamesEveryProblem() throws {
        let body = try json(#"{"n":5,"s":"x","b":true,"nul":null}"#)
        #expect(throws: ApiError("p.zz: unknown field (expected one of: n, s)")) {
            _ = try StrictObject(try json(#"{"n":1,"zz":2}"#), path: "p", allowed: ["n", "s"])
        }
        let object = try StrictObject(body, path: "p", allowed: ["n", "s", "b", "nul"])
        #expect(try object.int("n", in: 0...10) == 5)
        #expect(throws: ApiError("p.n: 5 is out of range (6 to 10)")) { try object.int("n", in: 6...10) }
        #expect(throws: ApiError("p.s: expected an integer, got a string")) { try object.int("s", in: 0...1) }
        #expect(throws: ApiError("p.b: expected a string, got a boolean")) { try object.string("b") }
        #expect(try object.string("nul") == nil)  // null is absent
        #expect(throws: ApiError("p.nul: missing required field")) { try object.string(required: "nul") }
        #expect(throws: ApiError("p.s: 'x' is not one of A, B")) { try object.choice("s", ["A", "B"]) }
        #expect(throws: ApiError("the body must be a JSON object, not an array")) {
            _ = try StrictObject(.array([]), path: "", allowed: [])
        }
    }

    @Test func routing() throws {
        #expect(try ApiEndpoint.route(method: "GET", uri: "/") == .instanceInfo)
        #expect(try ApiEndpoint.route(method: "GET", uri: "/vm/config") == .vmConfig)
        #expect(try ApiEndpoint.route(method: "PUT", uri: "/drives/root?x=1") == .putDrive("root"))
        #expect(try ApiEndpoint.route(method: "PATCH", uri: "/network-interfaces/eth0") == .patchNetworkInterface("eth0"))
        #expect(try ApiEndpoint.route(method: "PUT", uri: "/fs/shared") == .putFs("shared"))
        #expect(throws: ApiError.self) { try ApiEndpoint.route(method: "PATCH", uri: "/fs/shared") }
        #expect(throws: ApiError.self) { try ApiEndpoint.route(method: "POST", uri: "/actions") }
        #expect(throws: ApiError.self) { try ApiEndpoint.route(method: "GET", uri: "/drives/a/b") }
    }

    @Test func metricsLinesAreDeltas() throws {
        let writer = MetricsWriter()
        let first = writer.line(["vcpu": ["exit_io_out": 10]], timestampMs: 1)
        let second = writer.line(["vcpu": ["exit_io_out": 25]], timestampMs: 2)
        #expect(first == #"{"utc_timestamp_ms":1,"vcpu":{"exit_io_out":10}}"# + "\n")
        #expect(second == #"{"utc_timestamp_ms":2,"vcpu":{"exit_io_out":15}}"# + "\n")
    }

    @Test func configFileRoundTripsThroughVmConfig() throws {
        let kernel = FileManager.default.temporaryDirectory.appendingPathComponent("rt-kernel-\(getpid())")
        try Data([1, 2, 3]).write(to: kernel)
        let disk = FileManager.default.temporaryDirectory.appendingPathComponent("rt-disk-\(getpid())")
        try Data(count: 1024).write(to: disk)
        defer {
            try? FileManager.default.removeItem(at: kernel)
            try? FileManager.default.removeItem(at: disk)
        }
        let text = """
            {"boot-source": {"kernel_image_path": "\(kernel.path)", "boot_args": "a=b"},
             "machine-config": {"vcpu_count": 4, "mem_size_mib": 512},
             "drives": [{"drive_id": "data", "path_on_host": "\(disk.path)", "is_root_device": false},
                        {"drive_id": "root", "path_on_host": "\(disk.path)", "is_root_device": true, "is_read_only": true,
                         "partuuid": "1234-01"}],
             "vsock": {"guest_cid": 7, "uds_path": "/run/v.sock"},
             "fs": [{"fs_id": "shared", "tag": "kataShared", "socket": "/run/vfs.sock", "num_queues": 2, "queue_size": 512},
                    {"fs_id": "data", "tag": "data", "socket": "/run/data.sock"}],
             "logger": {"level": "debug"},
             "metrics": {"metrics_path": "/run/m.json"}}
            """
        let config = try FullVmConfiguration.parse(Data(text.utf8))
        #expect(config.vcpuCount == 4 && config.memoryMiB == 512)
        #expect(config.diskIds == ["root", "data"], "the root device becomes vda")
        #expect(config.kernelCmdline == "a=b root=PARTUUID=1234-01 ro")
        #expect(config.vsock == VsockConfig(guestCid: 7, udsPath: "/run/v.sock"))
        #expect(config.fs == [FsConfig(tag: "kataShared", socketPath: "/run/vfs.sock", requestQueues: 2, queueSize: 512, id: "shared"),
                              FsConfig(tag: "data", socketPath: "/run/data.sock", id: "data")])
        #expect(config.needsSharedMemory)
        #expect(config.logger?.level == .debug && config.metricsPath == "/run/m.json")
        // GET /vm/config describes it in the same format, and that parses back to the same VmConfig.
        let described = FullVmConfiguration.describe(config)
        #expect(try FullVmConfiguration.parse(Data(described.serialized.utf8)) == config)
    }
}
