import Foundation
import TestSupport
import Testing

/// `kata-vmm --config-file`: Firecracker's JSON config boots the probe guest with and
/// without the API, and every mistake in the file is reported by field.
@Suite struct ConfigFileTests {
    static func write(_ text: String, in vmm: VmmProcess? = nil) throws -> String {
        let file = Fixtures.scratch.appendingPathComponent("config-\(UUID().uuidString.prefix(8)).json")
        try Data(text.utf8).write(to: file)
        return file.path
    }

    static func disk(_ name: String, bytes: Int = 4096) throws -> String {
        let file = Fixtures.scratch.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8)).img")
        try Data(count: bytes).write(to: file)
        return file.path
    }

    @Test func configFileBootsTheProbeWithoutTheApi() throws {
        let probe = try Fixtures.probeGuest().path
        let disk = try Self.disk("cfg")
        let metrics = Fixtures.scratch.appendingPathComponent("cfg-metrics-\(UUID().uuidString.prefix(8)).json").path
        let config = try Self.write("""
            {
              "boot-source": {"kernel_image_path": "\(probe)", "boot_args": "console=ttyS0 probe.exit=3"},
              "machine-config": {"vcpu_count": 3, "mem_size_mib": 48, "smt": false},
              "drives": [{"drive_id": "rootfs", "path_on_host": "\(disk)", "is_root_device": true, "is_read_only": true}],
              "network-interfaces": [],
              "entropy": {},
              "metrics": {"metrics_path": "\(metrics)"},
              "balloon": null
            }
            """)
        let result = try Command.run(Fixtures.kataVmm.path, ["--config-file", config, "--no-api"], timeout: 60)
        #expect(result.status == 2, "\(result.stderr)")  // the probe ends with an i8042 reset
        #expect(result.stdout.contains("probe: cmdline=console=ttyS0 probe.exit=3 root=/dev/vda ro\n"), "\(result.stdout)")
        #expect(result.stdout.contains("probe: mptable_cpus=3\n"))
        #expect(result.stdout.contains("probe: ram_kib=\((0x9FC00 + (48 << 20) - 0x100000) >> 10)\n"))
        #expect(result.stdout.hasSuffix("probe: status=3\nprobe: i8042 reset\n"))
        // The last metrics line is written at exit.
        let line = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n").last.map(String.init) ?? ""
        #expect(line.contains("\"vcpu\":{") && line.contains("\"block_rootfs\":{"), "\(line)")
    }

    @Test func configFileAndApiTogether() throws {
        let probe = try Fixtures.probeGuest().path
        let config = try Self.write("""
            {"boot-source": {"kernel_image_path": "\(probe)", "boot_args": "probe.mode=count"},
             "machine-config": {"vcpu_count": 2, "mem_size_mib": 32}}
            """)
        let vmm = try VmmProcess(extra: ["--config-file", config, "--id", "cfg-vm"])
        #expect(vmm.wait { vmm.lastTick >= 1 }, "\(vmm.log)")
        let info = try UnixHTTPClient.request(vmm.socket, "GET", "/")
        #expect(info.json?["state"] as? String == "Running" && info.json?["id"] as? String == "cfg-vm")
        let machine = try UnixHTTPClient.request(vmm.socket, "GET", "/machine-config").json
        #expect(machine?["vcpu_count"] as? Int == 2 && machine?["mem_size_mib"] as? Int == 32)
        #expect(try UnixHTTPClient.request(vmm.socket, "PATCH", "/vm", body: #"{"state":"Paused"}"#).status == 204)
        #expect(vmm.stop() == 128 + SIGTERM)
    }

    /// Each bad file: exit status 1, and one line naming the field.
    @Test func errorsNameTheField() throws {
        let probe = try Fixtures.probeGuest().path
        let disk = try Self.disk("err")
        let boot = #""boot-source": {"kernel_image_path": "\#(probe)"}"#
        let cases: [(String, String)] = [
            ("{", "the config file is not valid JSON"),
            ("[]", "must be a JSON object"),
            ("{}", "boot-source: missing required section"),
            (#"{\#(boot), "machine_config": {}}"#, "machine_config: unknown field"),
            (#"{\#(boot), "balloon": {"amount_mib": 1}}"#, "balloon.deflate_on_oom: missing required field"),
            (#"{\#(boot), "balloon": {"amount_mib": 1, "deflate_on_oom": false, "free_page_hinting": 1}}"#, "balloon.free_page_hinting: expected a boolean"),
            (#"{\#(boot), "balloon": {"amount_mib": 4096, "deflate_on_oom": false}}"#, "the balloon's amount_mib (4096) is more than the VM's memory"),
            (#"{\#(boot), "machine-config": {"vcpu_count": 1, "mem_size_mib": 64, "huge_pages": "2M"}, "balloon": {"amount_mib": 1, "deflate_on_oom": false}}"#, "a balloon cannot be used with huge_pages 2M"),
            (#"{\#(boot), "mmds-config": {"network_interfaces": []}}"#, "mmds-config: network_interfaces must name at least one interface"),
            (#"{"boot-source": {"kernel_image_path": 1}}"#, "boot-source.kernel_image_path: expected a string, got a number"),
            (#"{\#(boot), "machine-config": {"vcpu_count": 2}}"#, "machine-config.mem_size_mib: missing required field"),
            (#"{\#(boot), "drives": {}}"#, "drives: expected an array, got an object"),
            (#"{\#(boot), "drives": [{"drive_id": "a", "path_on_host": "\#(disk)", "is_root_device": false}, {"drive_id": "b", "path_on_host": "\#(disk)", "is_root_device": "no"}]}"#,
             "drives[1].is_root_device: expected a boolean, got a string"),
            (#"{\#(boot), "drives": [{"drive_id": "a", "path_on_host": "\#(disk)", "is_root_device": false}, {"drive_id": "a", "path_on_host": "\#(disk)", "is_root_device": false}]}"#,
             "drives[1].drive_id: 'a' is used twice"),
            (#"{\#(boot), "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "zz"}]}"#,
             "network-interfaces[0].guest_mac"),
            (#"{\#(boot), "vsock": {"guest_cid": 1, "uds_path": "/tmp/v"}}"#, "vsock.guest_cid: 1 is out of range"),
            (#"{\#(boot), "fs": [{"fs_id": "a", "socket": "/tmp/v.sock"}]}"#, "fs[0].tag: missing required field"),
            (#"{\#(boot), "fs": [{"fs_id": "a", "tag": "x", "socket": "/tmp/v.sock"}, {"fs_id": "a", "tag": "y", "socket": "/tmp/w.sock"}]}"#,
             "fs[1].fs_id: 'a' is used twice"),
            (#"{\#(boot), "fs": [{"fs_id": "a", "tag": "x", "socket": "/tmp/v.sock"}, {"fs_id": "b", "tag": "x", "socket": "/tmp/w.sock"}]}"#,
             "two virtio-fs devices have the tag 'x'"),
            (#"{\#(boot), "fs": [{"fs_id": "a", "tag": "x", "socket": "/tmp/v.sock", "num_queues": 17}]}"#, "fs[0]: queues must be from 1 to 16"),
            (#"{\#(boot), "logger": {"level": "Chatty"}}"#, "logger.level: 'Chatty' is not one of"),
            (#"{\#(boot), "metrics": {}}"#, "metrics.metrics_path: missing required field"),
            (#"{\#(boot), "entropy": {"rate_limiter": {"ops": {"size": 5}}}}"#, "entropy.rate_limiter.ops.refill_time: missing required field"),
            (#"{\#(boot), "machine-config": {"vcpu_count": 1, "mem_size_mib": 64, "vcpu_count": 2}}"#,
             "the config file: machine-config.vcpu_count: duplicate key"),
            (#"{\#(boot), \#(boot)}"#, "the config file: boot-source: duplicate key"),
            (#"{"boot-source": {"kernel_image_path": "\#(probe)\u0000.evil"}}"#,
             "the config file: boot-source.kernel_image_path: must not contain a NUL character"),
            (#"{\#(boot), "serial": {"serial_out_path": "/tmp/s", "rate_limiter": {"bandwidth":{"size":1000,"refill_time":100}}}}"#, "serial.rate_limiter.bandwidth: the serial console has no rate limiter"),
            (#"{\#(boot), "entropy": {"rate_limiter": {"burst": 1}}}"#, "entropy.rate_limiter.burst: unknown field"),
            (#"{\#(boot), "serial": {"max_bytes": -1}}"#, "serial.max_bytes: -1 is out of range"),
        ]
        for (text, expected) in cases {
            let file = try Self.write(text)
            let result = try Command.run(Fixtures.kataVmm.path, ["--config-file", file, "--no-api"], timeout: 30)
            #expect(result.status == 1, "\(text): \(result.stderr)")
            #expect(result.stderr.contains("kata-vmm: error: config file '\(file)': "), "\(result.stderr)")
            #expect(result.stderr.contains(expected), "\(text): \(result.stderr)")
            #expect(result.stdout.isEmpty)
        }
        let missingFile = try Command.run(Fixtures.kataVmm.path, ["--config-file", "/nonexistent/vm.json"], timeout: 30)
        #expect(missingFile.status == 1 && missingFile.stderr.contains("cannot open config file '/nonexistent/vm.json'"), "\(missingFile.stderr)")
    }

    @Test func flagCombinations() throws {
        let run = { (arguments: [String]) in try Command.run(Fixtures.kataVmm.path, arguments, timeout: 30) }
        let noApi = try run(["--no-api"])
        #expect(noApi.status == 64 && noApi.stderr.contains("--no-api requires --config-file"), "\(noApi.stderr)")
        let both = try run(["--kernel", "/k", "--config-file", "/c"])
        #expect(both.status == 64 && both.stderr.contains("exclude each other"))
        let nothing = try run([])
        #expect(nothing.status == 64 && nothing.stderr.contains("missing --kernel"))
        // The socket path must be free, as in Firecracker.
        let taken = Fixtures.scratch.appendingPathComponent("taken-\(UUID().uuidString.prefix(8)).sock").path
        FileManager.default.createFile(atPath: taken, contents: nil)
        let busy = try run(["--api-sock", taken])
        #expect(busy.status == 1 && busy.stderr.contains("already exists"), "\(busy.stderr)")
    }
}
