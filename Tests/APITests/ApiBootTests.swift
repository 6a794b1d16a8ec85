import Foundation
import TestSupport
import Testing

/// The probe guest configured and started entirely through the API, by curl and by the
/// Swift client: every configuration endpoint's success path, what GET reports back,
/// metrics and logger output, pause/resume seen in the guest's progress, drive swaps.
@Suite struct ApiBootTests {
    static func makeDisk(_ vmm: VmmProcess, _ name: String, mib: Int) throws -> String {
        let path = vmm.path(name)
        try Data(count: mib << 20).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func curlConfiguresAndStartsTheProbe() throws {
        let probe = try Fixtures.probeGuest()
        let vmm = try VmmProcess()
        let s = vmm.socket
        let disk = try Self.makeDisk(vmm, "disk0.img", mib: 1)
        let metrics = vmm.path("metrics.json")
        let log = vmm.path("api-log.txt")
        let cmdline = "console=ttyS0 probe.mode=count"

        let info = try Curl.request(s, "GET", "/")
        #expect(info.status == 200)
        #expect(info.body.contains("\"state\":\"Not started\""), "\(info.body)")
        #expect(try Curl.request(s, "GET", "/version").body.contains("firecracker_version"))
        let steps: [(String, String, String)] = [
            ("PUT", "/logger", #"{"log_path":"\#(log)","level":"Info","show_level":true}"#),
            ("PUT", "/metrics", #"{"metrics_path":"\#(metrics)"}"#),
            ("PUT", "/boot-source", #"{"kernel_image_path":"\#(probe.path)","boot_args":"\#(cmdline)"}"#),
            ("PUT", "/machine-config", #"{"vcpu_count":2,"mem_size_mib":64,"smt":false}"#),
            ("PATCH", "/machine-config", #"{"mem_size_mib":96}"#),
            ("PUT", "/drives/rootfs", #"{"drive_id":"rootfs","path_on_host":"\#(disk)","is_root_device":true,"is_read_only":false,"cache_type":"Writeback","io_engine":"Sync","rate_limiter":{}}"#),
            ("PUT", "/vsock", #"{"guest_cid":3,"uds_path":"\#(vmm.path("v.sock"))"}"#),
            // Kata's driver sends empty rate limiters: they limit nothing, as in Firecracker.
            ("PUT", "/entropy", #"{"rate_limiter":{"bandwidth":null,"ops":null}}"#),
            ("PUT", "/actions", #"{"action_type":"InstanceStart"}"#),
        ]
        for (method, path, body) in steps {
            let response = try Curl.request(s, method, path, body: body)
            #expect(response.status == 204, "\(method) \(path): \(response.status) \(response.body)")
            #expect(response.body.isEmpty)
        }
        #expect(vmm.wait { vmm.lastTick >= 3 }, "\(vmm.serial)\n\(vmm.log)")
        // The guest got what the API configured: 2 vCPUs, 96 MiB, the root= the drive implies.
        #expect(vmm.serial.contains("probe: cmdline=\(cmdline) root=/dev/vda rw\n"), "\(vmm.serial)")
        #expect(vmm.serial.contains("probe: mptable_cpus=2\n"))
        #expect(vmm.serial.contains("probe: ram_kib=\((0x9FC00 + (96 << 20) - 0x100000) >> 10)\n"))
        #expect(try Curl.request(s, "GET", "/").body.contains("\"state\":\"Running\""))

        let config = try #require(UnixHTTPClient.Response(status: 200, headers: [:], body: try Curl.request(s, "GET", "/vm/config").body).json)
        let machine = config["machine-config"] as? [String: Any]
        #expect(machine?["vcpu_count"] as? Int == 2 && machine?["mem_size_mib"] as? Int == 96)
        let drives = config["drives"] as? [[String: Any]]
        #expect(drives?.first?["drive_id"] as? String == "rootfs" && drives?.first?["cache_type"] as? String == "Writeback")
        #expect((config["vsock"] as? [String: Any])?["guest_cid"] as? Int == 3)
        #expect(config["entropy"] is [String: Any])
        #expect((config["metrics"] as? [String: Any])?["metrics_path"] as? String == metrics)

        // FlushMetrics writes one Firecracker-shaped line with the VM's counters.
        #expect(try Curl.request(s, "PUT", "/actions", body: #"{"action_type":"FlushMetrics"}"#).status == 204)
        let lines = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n")
        let line = try #require(lines.last)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["utc_timestamp_ms"] is Int)
        let vcpu = try #require(object["vcpu"] as? [String: Any])
        #expect((vcpu["exit_io_out"] as? Int ?? 0) > 0, "\(vcpu)")
        #expect((vcpu["exit_mmio_write"] as? Int ?? 0) > 0, "\(vcpu)")  // the boot timer
        let put = try #require(object["put_api_requests"] as? [String: Any])
        #expect(put["boot_source_count"] as? Int == 1 && put["drive_count"] as? Int == 1 && put["actions_count"] as? Int == 2)
        #expect(object["block_rootfs"] is [String: Any] && object["block"] is [String: Any] && object["net"] is [String: Any])
        // Deltas: a second flush right away reports no new API requests of those kinds.
        #expect(try Curl.request(s, "PUT", "/actions", body: #"{"action_type":"FlushMetrics"}"#).status == 204)
        let second = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n").last.map(String.init) ?? ""
        #expect(second.contains("\"boot_source_count\":0"), "\(second)")

        // The log went to the configured file, with levels, not to stderr.
        let logText = try String(contentsOfFile: log, encoding: .utf8)
        #expect(logText.contains("first KVM_RUN") && logText.contains("after InstanceStart"), "\(logText)")
        #expect(logText.contains(" INFO "))
        #expect(!vmm.log.contains("first KVM_RUN"))

        // Ctrl-Alt-Del reaches the guest's keyboard controller (the probe prints the scancodes).
        #expect(!vmm.serial.contains("probe: key"))
        #expect(try Curl.request(s, "PUT", "/actions", body: #"{"action_type":"SendCtrlAltDel"}"#).status == 204)
        #expect(vmm.wait { vmm.serial.contains("probe: key 0x14\nprobe: key 0x11\nprobe: key 0xe0\nprobe: key 0x71\n") },
                "\(vmm.serial.suffix(500))")
        #expect(vmm.stop() == 128 + SIGTERM)
        #expect(!FileManager.default.fileExists(atPath: s), "the API socket is removed on exit")
    }

    @Test func pauseAndResumeStopAndRestartTheGuest() throws {
        let probe = try Fixtures.probeGuest()
        let vmm = try VmmProcess()
        let api = try UnixHTTPClient(path: vmm.socket)
        #expect(try api.request("PUT", "/boot-source", body: #"{"kernel_image_path":"\#(probe.path)","boot_args":"probe.mode=count"}"#).status == 204)
        #expect(try api.request("PUT", "/machine-config", body: #"{"vcpu_count":2,"mem_size_mib":32}"#).status == 204)
        #expect(try api.request("PATCH", "/vm", body: #"{"state":"Paused"}"#).faultMessage?.contains("before starting") == true)
        #expect(try api.request("PUT", "/actions", body: #"{"action_type":"InstanceStart"}"#).status == 204)
        #expect(vmm.wait { vmm.lastTick >= 2 }, "\(vmm.log)")

        for round in 0..<3 {
            #expect(try api.request("PATCH", "/vm", body: #"{"state":"Paused"}"#).status == 204)
            #expect(try api.request("GET", "/").json?["state"] as? String == "Paused")
            let frozenBytes = vmm.serialBytes
            let frozenTick = vmm.lastTick
            usleep(600_000)  // ~15 ticks at the probe's pace
            #expect(vmm.serialBytes == frozenBytes, "round \(round): the guest printed while paused")
            // Pausing again is accepted and changes nothing.
            #expect(try api.request("PATCH", "/vm", body: #"{"state":"Paused"}"#).status == 204)
            #expect(try api.request("PATCH", "/vm", body: #"{"state":"Resumed"}"#).status == 204)
            #expect(try api.request("GET", "/").json?["state"] as? String == "Running")
            #expect(vmm.wait { vmm.lastTick >= frozenTick + 3 }, "round \(round): no progress after resume")
            // Counting went on from where it stopped: no tick lost, none repeated.
            let ticks = vmm.serial.split(separator: "\n").compactMap { line -> Int? in
                line.hasPrefix("probe: tick ") ? Int(line.dropFirst("probe: tick ".count)) : nil
            }
            #expect(ticks == Array(0..<ticks.count), "round \(round)")
        }
        #expect(try api.request("PATCH", "/vm", body: #"{"state":"Running"}"#).faultMessage?.contains("state") == true)
        // A paused VM can still be stopped.
        #expect(try api.request("PATCH", "/vm", body: #"{"state":"Paused"}"#).status == 204)
        #expect(vmm.stop() == 128 + SIGTERM)
    }

    /// PUT /serial (Firecracker's SerialDevice): the console goes to the file, not stdout.
    @Test func putSerialSendsTheConsoleToAFile() throws {
        let probe = try Fixtures.probeGuest()
        let vmm = try VmmProcess()
        let console = vmm.path("console.log")
        let api = try UnixHTTPClient(path: vmm.socket)
        #expect(try api.request("PUT", "/boot-source", body: #"{"kernel_image_path":"\#(probe.path)","boot_args":"console=ttyS0 probe.mode=count"}"#).status == 204)
        #expect(try api.request("PUT", "/serial", body: #"{"serial_out_path":"\#(console)"}"#).status == 204)
        #expect(try api.request("PUT", "/actions", body: #"{"action_type":"InstanceStart"}"#).status == 204)
        #expect(vmm.wait { ((try? String(contentsOfFile: console, encoding: .utf8)) ?? "").contains("probe: tick 2\n") }, "\(vmm.log)")
        #expect(!vmm.serial.contains("probe:"), "\(vmm.serial)")
        vmm.stop()
    }

    @Test func patchDriveSwapsTheBackingFileAfterStart() throws {
        let probe = try Fixtures.probeGuest()
        let vmm = try VmmProcess()
        let first = try Self.makeDisk(vmm, "a.img", mib: 1)
        let second = try Self.makeDisk(vmm, "b.img", mib: 2)
        let api = try UnixHTTPClient(path: vmm.socket)
        #expect(try api.request("PUT", "/boot-source", body: #"{"kernel_image_path":"\#(probe.path)","boot_args":"probe.mode=count"}"#).status == 204)
        #expect(try api.request("PUT", "/drives/data", body: #"{"drive_id":"data","path_on_host":"\#(first)","is_root_device":false}"#).status == 204)
        // PATCH is post-boot only.
        let early = try api.request("PATCH", "/drives/data", body: #"{"drive_id":"data","path_on_host":"\#(second)"}"#)
        #expect(early.status == 400 && early.faultMessage?.contains("before starting") == true)
        #expect(try api.request("PUT", "/actions", body: #"{"action_type":"InstanceStart"}"#).status == 204)
        // PUT is pre-boot only, and nothing changes.
        let late = try api.request("PUT", "/drives/data", body: #"{"drive_id":"data","path_on_host":"\#(second)","is_root_device":false}"#)
        #expect(late.status == 400 && late.faultMessage?.contains("after starting") == true)
        func drivePath() throws -> String? {
            ((try api.request("GET", "/vm/config").json?["drives"] as? [[String: Any]])?.first?["path_on_host"]) as? String
        }
        #expect(try drivePath() == first)
        // A missing file, a malformed rate limiter, an unknown drive: refused, nothing changes.
        let missing = try api.request("PATCH", "/drives/data", body: #"{"drive_id":"data","path_on_host":"\#(vmm.path("nope.img"))"}"#)
        #expect(missing.status == 400 && missing.faultMessage?.contains("cannot open") == true, "\(missing)")
        let limiter = try api.request("PATCH", "/drives/data", body: #"{"drive_id":"data","rate_limiter":{"bandwidth":{"size":"1","refill_time":1}}}"#)
        #expect(limiter.status == 400 && limiter.faultMessage?.contains("rate_limiter.bandwidth.size: expected an integer") == true, "\(limiter)")
        let unknown = try api.request("PATCH", "/drives/other", body: #"{"drive_id":"other","path_on_host":"\#(second)"}"#)
        #expect(unknown.status == 400 && unknown.faultMessage?.contains("no drive") == true)
        #expect(try drivePath() == first)
        // The swap itself.
        #expect(try api.request("PATCH", "/drives/data", body: #"{"drive_id":"data","path_on_host":"\#(second)"}"#).status == 204)
        #expect(try drivePath() == second)
        #expect(vmm.wait { vmm.lastTick >= 2 }, "\(vmm.log)")
        vmm.stop()
    }
}
