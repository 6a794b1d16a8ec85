import Foundation
import TestSupport
import Testing

/// Every endpoint's refusals: unknown fields, wrong types, missing required fields, bad
/// values, and operations the current state does not allow. Each refusal is a 400 with a
/// fault_message naming the problem, and leaves the configuration and the state as they were.
@Suite struct ApiValidationTests {
    struct Case: CustomStringConvertible {
        var method: String
        var path: String
        var body: String?
        var fault: String
        var description: String { "\(method) \(path) \(body ?? "")" }
    }

    static func check(_ cases: [Case], _ api: UnixHTTPClient, state: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let before = try api.request("GET", "/vm/config").body
        for c in cases {
            let response = try api.request(c.method, c.path, body: c.body)
            #expect(response.status == 400, "\(c): \(response)", sourceLocation: sourceLocation)
            #expect(response.headers["content-type"] == "application/json", sourceLocation: sourceLocation)
            let fault = response.faultMessage ?? "(no fault_message)"
            #expect(fault.contains(c.fault), "\(c): \(fault)", sourceLocation: sourceLocation)
            #expect(try api.request("GET", "/vm/config").body == before, "\(c) changed the configuration", sourceLocation: sourceLocation)
        }
        #expect(try api.request("GET", "/").json?["state"] as? String == state, sourceLocation: sourceLocation)
    }

    @Test func everyEndpointRefusesBadRequestsBeforeStart() throws {
        let probe = try Fixtures.probeGuest().path
        let vmm = try VmmProcess()
        let disk = vmm.path("d.img")
        try Data(count: 4096).write(to: URL(fileURLWithPath: disk))
        let odd = vmm.path("odd.img")
        try Data(count: 1000).write(to: URL(fileURLWithPath: odd))
        let api = try UnixHTTPClient(path: vmm.socket)
        let missing = vmm.path("missing")
        // A FIFO without a writer: opening it must not stall the API.
        let fifo = vmm.path("kernel.fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        let notStarted = "not supported before starting"
        let cases: [Case] = [
            // Routing and JSON.
            Case(method: "GET", path: "/nope", body: nil, fault: "Invalid request method and/or path: GET /nope"),
            Case(method: "DELETE", path: "/", body: nil, fault: "Invalid request method"),
            Case(method: "PUT", path: "/drives", body: "{}", fault: "id is missing"),
            Case(method: "PUT", path: "/boot-source", body: "{\"kernel_image_path\": ", fault: "not valid JSON"),
            Case(method: "PUT", path: "/boot-source", body: "", fault: "not valid JSON"),
            Case(method: "PUT", path: "/boot-source", body: "[]", fault: "must be a JSON object"),
            // boot-source
            Case(method: "PUT", path: "/boot-source", body: #"{"kernel_image_path":"\#(fifo)"}"#, fault: "is not a regular file"),
            Case(method: "PUT", path: "/boot-source", body: #"{"kernel_image_path":"\#(probe)","foo":1}"#, fault: "foo: unknown field"),
            Case(method: "PUT", path: "/boot-source", body: #"{"kernel_image_path":5}"#, fault: "kernel_image_path: expected a string, got a number"),
            Case(method: "PUT", path: "/boot-source", body: #"{"boot_args":"x"}"#, fault: "kernel_image_path: missing required field"),
            Case(method: "PUT", path: "/boot-source", body: #"{"kernel_image_path":"\#(missing)"}"#, fault: "kernel_image_path: cannot open"),
            Case(method: "PUT", path: "/boot-source", body: #"{"kernel_image_path":"\#(probe)","initrd_path":"\#(missing)"}"#, fault: "initrd_path: cannot open"),
            // machine-config
            Case(method: "PUT", path: "/machine-config", body: #"{"vcpu_count":2}"#, fault: "mem_size_mib: missing required field"),
            Case(method: "PUT", path: "/machine-config", body: #"{"vcpu_count":true,"mem_size_mib":64}"#, fault: "vcpu_count: expected an integer, got a boolean"),
            Case(method: "PUT", path: "/machine-config", body: #"{"vcpu_count":1.5,"mem_size_mib":64}"#, fault: "vcpu_count: expected an integer"),
            Case(method: "PUT", path: "/machine-config", body: #"{"vcpu_count":0,"mem_size_mib":64}"#, fault: "vcpu_count: 0 is out of range"),
            Case(method: "PUT", path: "/machine-config", body: #"{"vcpu_count":33,"mem_size_mib":64}"#, fault: "out of range"),
            Case(method: "PUT", path: "/machine-config", body: #"{"vcpu_count":3,"mem_size_mib":64,"smt":true}"#, fault: "invalid vCPU count 3 with SMT: must be 1 or an even number"),
            Case(method: "PUT", path: "/machine-config", body: #"{"vcpu_count":1,"mem_size_mib":64,"smt":"yes"}"#, fault: "smt: expected a boolean"),
            Case(method: "PUT", path: "/machine-config", body: #"{"vcpu_count":1,"mem_size_mib":64,"cpu_template":"T2"}"#, fault: "cpu_template"),
            Case(method: "PUT", path: "/machine-config", body: #"{"vcpu_count":1,"mem_size_mib":65,"huge_pages":"2M"}"#, fault: "mem_size_mib: 65 is not a whole number of 2 MiB huge pages"),
            Case(method: "PUT", path: "/machine-config", body: #"{"vcpu_count":1,"mem_size_mib":64,"huge_pages":"1G"}"#, fault: "huge_pages"),
            Case(method: "PUT", path: "/machine-config", body: #"{"vcpu_count":1,"mem_size_mib":64,"track_dirty_pages":1}"#, fault: "track_dirty_pages: expected a boolean"),
            Case(method: "PUT", path: "/machine-config", body: #"{"vcpu_count":1,"mem_size_mib":64,"cores":4}"#, fault: "cores: unknown field"),
            Case(method: "PATCH", path: "/machine-config", body: #"{"mem_size_mib":"64"}"#, fault: "mem_size_mib: expected an integer, got a string"),
            Case(method: "PATCH", path: "/machine-config", body: #"{"bogus":1}"#, fault: "bogus: unknown field"),
            // drives
            Case(method: "PUT", path: "/drives/d1", body: #"{"drive_id":"d1","path_on_host":"\#(disk)"}"#, fault: "is_root_device: missing required field"),
            Case(method: "PUT", path: "/drives/d1", body: #"{"drive_id":"d1","path_on_host":"\#(disk)","is_root_device":false,"is_read_only":"yes"}"#, fault: "is_read_only: expected a boolean"),
            Case(method: "PUT", path: "/drives/d1", body: #"{"drive_id":"d2","path_on_host":"\#(disk)","is_root_device":false}"#, fault: "does not match the id in the path"),
            Case(method: "PUT", path: "/drives/a-b", body: #"{"drive_id":"a-b","path_on_host":"\#(disk)","is_root_device":false}"#, fault: "invalid id"),
            Case(method: "PUT", path: "/drives/d1", body: #"{"drive_id":"d1","path_on_host":"\#(missing)","is_root_device":false}"#, fault: "path_on_host: cannot open disk"),
            Case(method: "PUT", path: "/drives/d1", body: #"{"drive_id":"d1","path_on_host":"\#(odd)","is_root_device":false}"#, fault: "not a multiple of 512"),
            Case(method: "PUT", path: "/drives/d1", body: #"{"drive_id":"d1","path_on_host":"\#(disk)","is_root_device":false,"rate_limiter":{"bandwidth":{"size":1000}}}"#, fault: "rate_limiter.bandwidth.refill_time: missing required field"),
            Case(method: "PUT", path: "/drives/d1", body: #"{"drive_id":"d1","socket":"/x","is_root_device":false}"#, fault: "vhost-user-block"),
            Case(method: "PUT", path: "/drives/d1", body: #"{"drive_id":"d1","path_on_host":"\#(disk)","is_root_device":false,"io_engine":"Fast"}"#, fault: "io_engine: 'Fast' is not one of Sync, Async"),
            Case(method: "PUT", path: "/drives/abcdefghijklmnopqrstu", body: #"{"drive_id":"abcdefghijklmnopqrstu","path_on_host":"\#(disk)","is_root_device":false}"#, fault: "at most 20 bytes"),
            Case(method: "PUT", path: "/drives/d1", body: #"{"drive_id":"d1","path_on_host":"\#(disk)","is_root_device":false,"x":1}"#, fault: "x: unknown field"),
            Case(method: "PATCH", path: "/drives/d1", body: #"{"drive_id":"d1","path_on_host":"\#(disk)"}"#, fault: notStarted),
            // network-interfaces
            Case(method: "PUT", path: "/network-interfaces/eth0", body: #"{"iface_id":"eth0"}"#, fault: "host_dev_name: missing required field"),
            Case(method: "PUT", path: "/network-interfaces/eth0", body: #"{"iface_id":"eth0","host_dev_name":"tap0","guest_mac":"01:00:00:00:00:01"}"#, fault: "guest_mac"),
            Case(method: "PUT", path: "/network-interfaces/eth0", body: #"{"iface_id":"eth0","host_dev_name":"tap0","mtu":10}"#, fault: "mtu: 10 is out of range"),
            Case(method: "PUT", path: "/network-interfaces/eth0", body: #"{"iface_id":"eth0","host_dev_name":"tap0","rx_rate_limiter":{"ops":{"size":-1,"refill_time":1}}}"#, fault: "rx_rate_limiter.ops.size: -1 is out of range"),
            Case(method: "PUT", path: "/network-interfaces/eth0", body: #"{"iface_id":"eth1","host_dev_name":"tap0"}"#, fault: "does not match"),
            Case(method: "PUT", path: "/network-interfaces/eth0", body: #"{"iface_id":"eth0","host_dev_name":"a-very-long-tap-name"}"#, fault: "at most 15 bytes"),
            Case(method: "PUT", path: "/network-interfaces/eth0", body: #"{"iface_id":"eth0","host_dev_name":"tap0","allow_mmds_requests":true}"#, fault: "allow_mmds_requests: unknown field"),
            Case(method: "PATCH", path: "/network-interfaces/eth0", body: #"{"iface_id":"eth0"}"#, fault: notStarted),
            // fs (our extension: Cloud Hypervisor's FsConfig)
            Case(method: "PUT", path: "/fs", body: "{}", fault: "id is missing"),
            Case(method: "PUT", path: "/fs/shared", body: #"{"fs_id":"shared","socket":"/tmp/v.sock"}"#, fault: "tag: missing required field"),
            Case(method: "PUT", path: "/fs/shared", body: #"{"fs_id":"shared","tag":"t"}"#, fault: "socket: missing required field"),
            Case(method: "PUT", path: "/fs/shared", body: #"{"fs_id":"other","tag":"t","socket":"/tmp/v.sock"}"#, fault: "does not match the id in the path"),
            Case(method: "PUT", path: "/fs/shared", body: #"{"fs_id":"shared","tag":"\#(String(repeating: "t", count: 37))","socket":"/tmp/v.sock"}"#, fault: "tag must be 1 to 36 bytes"),
            Case(method: "PUT", path: "/fs/shared", body: #"{"fs_id":"shared","tag":"t","socket":"/tmp/v.sock","num_queues":0}"#, fault: "queues must be from 1 to 16"),
            Case(method: "PUT", path: "/fs/shared", body: #"{"fs_id":"shared","tag":"t","socket":"/tmp/v.sock","queue_size":1000}"#, fault: "power of two"),
            Case(method: "PUT", path: "/fs/shared", body: #"{"fs_id":"shared","tag":"t","socket":"/tmp/v.sock","queue_size":-1}"#, fault: "queue_size"),
            Case(method: "PUT", path: "/fs/shared", body: #"{"fs_id":"shared","tag":"t","socket":"/tmp/v.sock","cache_size":1}"#, fault: "cache_size: unknown field"),
            // vsock, entropy, logger, metrics
            Case(method: "PUT", path: "/vsock", body: #"{"guest_cid":2,"uds_path":"/tmp/x"}"#, fault: "guest_cid: 2 is out of range"),
            Case(method: "PUT", path: "/vsock", body: #"{"guest_cid":3}"#, fault: "uds_path: missing required field"),
            Case(method: "PUT", path: "/vsock", body: #"{"guest_cid":3,"uds_path":"/tmp/x","port":1}"#, fault: "port: unknown field"),
            Case(method: "PUT", path: "/entropy", body: #"{"rate_limiter":{"ops":{"size":1,"refill_time":1,"burst":3}}}"#, fault: "rate_limiter.ops.burst: unknown field"),
            Case(method: "PUT", path: "/entropy", body: #"{"device":1}"#, fault: "device: unknown field"),
            Case(method: "PUT", path: "/balloon", body: #"{"amount_mib":-1,"deflate_on_oom":true}"#, fault: "amount_mib: -1 is out of range"),
            Case(method: "PUT", path: "/balloon", body: #"{"amount_mib":1,"deflate_on_oom":true,"stats_polling_interval_s":70000}"#, fault: "stats_polling_interval_s: 70000 is out of range"),
            Case(method: "GET", path: "/balloon", body: "", fault: "balloon device not configured"),
            Case(method: "PATCH", path: "/balloon", body: #"{"amount_mib":1}"#, fault: notStarted),
            Case(method: "PATCH", path: "/balloon/statistics", body: #"{"stats_polling_interval_s":1}"#, fault: notStarted),
            Case(method: "GET", path: "/balloon/statistics", body: "", fault: notStarted),
            Case(method: "PUT", path: "/serial", body: #"{"serial_out_path":3}"#, fault: "serial_out_path: expected a string"),
            Case(method: "PUT", path: "/serial", body: #"{"serial_out_path":"/tmp/s","rate_limiter":{"ops":{"size":1,"refill_time":1}}}"#, fault: "rate_limiter.ops: the serial console has no rate limiter"),
            Case(method: "PUT", path: "/logger", body: #"{"level":"Loud"}"#, fault: "level: 'Loud' is not one of"),
            Case(method: "PUT", path: "/logger", body: #"{"log_path":7}"#, fault: "log_path: expected a string"),
            Case(method: "PUT", path: "/logger", body: #"{"module":"api_server::request"}"#, fault: "module: 'api_server::request' is not a kata-vmm module"),
            Case(method: "PUT", path: "/logger", body: #"{"log_path":"\#(vmm.path("no/such/dir.log"))"}"#, fault: "log_path: cannot open"),
            Case(method: "PUT", path: "/metrics", body: "{}", fault: "metrics_path: missing required field"),
            Case(method: "PUT", path: "/metrics", body: #"{"metrics_path":false}"#, fault: "metrics_path: expected a string"),
            // actions and vm
            Case(method: "PUT", path: "/actions", body: #"{"action_type":"Reboot"}"#, fault: "action_type: 'Reboot' is not one of"),
            Case(method: "PUT", path: "/actions", body: "{}", fault: "action_type: missing required field"),
            Case(method: "PUT", path: "/actions", body: #"{"action_type":"InstanceStart","now":true}"#, fault: "now: unknown field"),
            Case(method: "PUT", path: "/actions", body: #"{"action_type":"SendCtrlAltDel"}"#, fault: notStarted),
            Case(method: "PUT", path: "/actions", body: #"{"action_type":"FlushMetrics"}"#, fault: "metrics system is not initialized"),
            Case(method: "PUT", path: "/actions", body: #"{"action_type":"InstanceStart"}"#, fault: "no boot source"),
            Case(method: "PATCH", path: "/vm", body: #"{"state":"Paused"}"#, fault: notStarted),
            Case(method: "PATCH", path: "/vm", body: #"{"state":"Frozen"}"#, fault: "state: 'Frozen' is not one of Paused, Resumed"),
            Case(method: "PATCH", path: "/vm", body: #"{"state":1}"#, fault: "state: expected a string"),
        ]
        try Self.check(cases, api, state: "Not started")

        // Successes that later refusals must not undo; a second root device is refused.
        #expect(try api.request("PUT", "/drives/d1", body: #"{"drive_id":"d1","path_on_host":"\#(disk)","is_root_device":true}"#).status == 204)
        #expect(try api.request("PUT", "/network-interfaces/eth0", body: #"{"iface_id":"eth0","host_dev_name":"kvtap0","guest_mac":"06:00:ac:10:00:02","mtu":1400}"#).status == 204)
        #expect(try api.request("PUT", "/fs/shared", body: #"{"fs_id":"shared","tag":"kataShared","socket":"\#(vmm.path("vfs.sock"))"}"#).status == 204)
        try Self.check([
            Case(method: "PUT", path: "/fs/other", body: #"{"fs_id":"other","tag":"kataShared","socket":"/tmp/w.sock"}"#, fault: "two virtio-fs devices have the tag 'kataShared'"),
            Case(method: "PUT", path: "/drives/d2", body: #"{"drive_id":"d2","path_on_host":"\#(disk)","is_root_device":true}"#, fault: "only one disk can be the root device"),
            Case(method: "PUT", path: "/network-interfaces/eth1", body: #"{"iface_id":"eth1","host_dev_name":"kvtap0"}"#, fault: "already used by 'eth0'"),
        ], api, state: "Not started")
        let config = try api.request("GET", "/vm/config").json
        let net = (config?["network-interfaces"] as? [[String: Any]])?.first
        #expect(net?["host_dev_name"] as? String == "kvtap0" && net?["guest_mac"] as? String == "06:00:ac:10:00:02" && net?["mtu"] as? Int == 1400)
        #expect((config?["drives"] as? [[String: Any]])?.count == 1)
        let fs = (config?["fs"] as? [[String: Any]])?.first
        #expect(fs?["fs_id"] as? String == "shared" && fs?["tag"] as? String == "kataShared" && fs?["num_queues"] as? Int == 1 && fs?["queue_size"] as? Int == 1024)
        // Metrics can be initialised once.
        #expect(try api.request("PUT", "/metrics", body: #"{"metrics_path":"\#(vmm.path("m.json"))"}"#).status == 204)
        try Self.check([Case(method: "PUT", path: "/metrics", body: #"{"metrics_path":"\#(vmm.path("m2.json"))"}"#, fault: "already initialized")],
                       api, state: "Not started")
        #expect(vmm.process.isRunning)
    }

    @Test func failedInstanceStartLeavesTheVmConfigurable() throws {
        let probe = try Fixtures.probeGuest().path
        let vmm = try VmmProcess()
        let notAKernel = vmm.path("text.bin")
        try Data("not a kernel at all".utf8).write(to: URL(fileURLWithPath: notAKernel))
        let api = try UnixHTTPClient(path: vmm.socket)
        #expect(try api.request("PUT", "/boot-source", body: #"{"kernel_image_path":"\#(notAKernel)"}"#).status == 204)
        let failed = try api.request("PUT", "/actions", body: #"{"action_type":"InstanceStart"}"#)
        #expect(failed.status == 400 && failed.faultMessage?.hasPrefix("InstanceStart: ") == true, "\(failed)")
        #expect(try api.request("GET", "/").json?["state"] as? String == "Not started")
        #expect(try api.request("PUT", "/boot-source", body: #"{"kernel_image_path":"\#(probe)","boot_args":"probe.mode=count"}"#).status == 204)
        #expect(try api.request("PUT", "/actions", body: #"{"action_type":"InstanceStart"}"#).status == 204)
        #expect(vmm.wait { vmm.lastTick >= 1 }, "\(vmm.log)")
    }

    @Test func preBootEndpointsAreRefusedAfterStart() throws {
        let probe = try Fixtures.probeGuest().path
        let vmm = try VmmProcess()
        let disk = vmm.path("d.img")
        try Data(count: 4096).write(to: URL(fileURLWithPath: disk))
        let api = try UnixHTTPClient(path: vmm.socket)
        #expect(try api.request("PUT", "/boot-source", body: #"{"kernel_image_path":"\#(probe)","boot_args":"probe.mode=count"}"#).status == 204)
        #expect(try api.request("PUT", "/actions", body: #"{"action_type":"InstanceStart"}"#).status == 204)
        let afterStart = "not supported after starting"
        try Self.check([
            Case(method: "PUT", path: "/boot-source", body: #"{"kernel_image_path":"\#(probe)"}"#, fault: afterStart),
            Case(method: "PUT", path: "/machine-config", body: #"{"vcpu_count":2,"mem_size_mib":64}"#, fault: afterStart),
            Case(method: "PATCH", path: "/machine-config", body: #"{"vcpu_count":2}"#, fault: afterStart),
            Case(method: "PUT", path: "/drives/d1", body: #"{"drive_id":"d1","path_on_host":"\#(disk)","is_root_device":false}"#, fault: afterStart),
            Case(method: "PUT", path: "/network-interfaces/eth0", body: #"{"iface_id":"eth0","host_dev_name":"tap0"}"#, fault: afterStart),
            Case(method: "PUT", path: "/vsock", body: #"{"guest_cid":3,"uds_path":"/tmp/x"}"#, fault: afterStart),
            Case(method: "PUT", path: "/fs/shared", body: #"{"fs_id":"shared","tag":"t","socket":"/tmp/v.sock"}"#, fault: afterStart),
            Case(method: "PUT", path: "/entropy", body: "{}", fault: afterStart),
            Case(method: "PUT", path: "/serial", body: "{}", fault: afterStart),
            Case(method: "PUT", path: "/logger", body: #"{"level":"Debug"}"#, fault: afterStart),
            Case(method: "PUT", path: "/metrics", body: #"{"metrics_path":"/tmp/m"}"#, fault: afterStart),
            Case(method: "PUT", path: "/actions", body: #"{"action_type":"InstanceStart"}"#, fault: "already started"),
            Case(method: "PATCH", path: "/drives/d1", body: #"{"drive_id":"d1","path_on_host":"\#(disk)"}"#, fault: "no drive 'd1'"),
            Case(method: "PATCH", path: "/network-interfaces/eth0", body: #"{"iface_id":"eth0"}"#, fault: "no network interface 'eth0'"),
            Case(method: "PATCH", path: "/network-interfaces/eth0", body: #"{"iface_id":"eth0","tx_rate_limiter":{"bandwidth":{"size":1,"refill_time":2000000000000}}}"#, fault: "tx_rate_limiter.bandwidth.refill_time: 2000000000000 is out of range"),
            Case(method: "PATCH", path: "/vm", body: #"{"state":"Paused","extra":1}"#, fault: "extra: unknown field"),
        ], api, state: "Running")
        // GETs still answer, and the guest is still running.
        #expect(try api.request("GET", "/machine-config").json?["vcpu_count"] as? Int == 1)
        let tick = vmm.lastTick
        #expect(vmm.wait { vmm.lastTick > tick + 2 })
    }
}
