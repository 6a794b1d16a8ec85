import Foundation
import TestSupport
import Testing

/// The firecracker binary's own flags, as its SDKs and Kata's driver pass them: the
/// logger and metrics from the command line, the API's payload limit, and a `--version`
/// that Kata's driver parses while it names kata-vmm.
@Suite struct FirecrackerFlagsTests {
    @Test func versionParsesAsKataDoesAndNamesKataVmm() throws {
        let result = try Command.run(Fixtures.kataVmm.path, ["--version"], timeout: 30)
        #expect(result.status == 0)
        let firstLine = result.stdout.split(separator: "\n").first.map(String.init) ?? ""
        // Kata's fc.go: the first line's second space-separated field, "v" trimmed, is a semver.
        let fields = firstLine.split(separator: " ", omittingEmptySubsequences: false)
        let version = fields.count > 1 ? String(fields[1]).trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "v", with: "") : ""
        #expect(version.split(separator: ".").count == 3 && version.split(separator: ".").allSatisfy { Int($0) != nil }, "\(firstLine)")
        #expect(firstLine.contains("kata-vmm"), "\(firstLine)")
    }

    @Test func loggerAndMetricsFromTheCommandLine() throws {
        let directory = try Fixtures.scratchDirectory("fc-flags")
        let log = directory + "/fc.log", metrics = directory + "/metrics.json"
        // As the jailer starts it: the clock began 2 s before this exec.
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let launched = (UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec / 1000)) - 2_000_000
        let vmm = try VmmProcess(extra: ["--id", "sdk-vm", "--log-path", log, "--level", "debug", "--show-level", "--show-log-origin",
                                         "--metrics-path", metrics, "--http-api-max-payload-size", "300", "--boot-timer",
                                         "--start-time-us", String(launched), "--parent-cpu-time-us", "1500"])
        defer { _ = vmm.stop() }
        let s = vmm.socket
        #expect(try Curl.request(s, "GET", "/").body.contains("\"id\":\"sdk-vm\""))
        #expect(try Curl.request(s, "GET", "/version").body.contains("\"firecracker_version\":\"1.7.0\""))
        let config = try #require(UnixHTTPClient.Response(status: 200, headers: [:], body: try Curl.request(s, "GET", "/vm/config").body).json)
        let logger = config["logger"] as? [String: Any]
        #expect(logger?["log_path"] as? String == log && logger?["level"] as? String == "Debug", "\(config)")
        #expect(logger?["show_level"] as? Bool == true && logger?["show_log_origin"] as? Bool == true)
        #expect((config["metrics"] as? [String: Any])?["metrics_path"] as? String == metrics)
        // The metrics system is initialized once, as in Firecracker.
        let again = try Curl.request(s, "PUT", "/metrics", body: #"{"metrics_path":"\#(directory)/other.json"}"#)
        #expect(again.status == 400 && again.body.contains("already initialized"), "\(again.body)")
        // The payload limit is the flag's, not the default's.
        let big = #"{"kernel_image_path":"/\#(String(repeating: "k", count: 400))"}"#
        let refused = try Curl.request(s, "PUT", "/boot-source", body: big)
        #expect(refused.status == 400 && refused.body.contains("larger than the limit of 300"), "\(refused.status) \(refused.body)")
        #expect(try Curl.request(s, "PUT", "/actions", body: #"{"action_type":"FlushMetrics"}"#).status == 204)
        // The log went to the file, at debug level (an unknown path is logged there), with
        // levels and origins.
        #expect(try Curl.request(s, "GET", "/no-such-endpoint").status == 400)
        #expect(vmm.wait { (try? String(contentsOfFile: log, encoding: .utf8))?.contains("DEBUG") == true })
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains(".swift:") && text.contains("INFO") && text.contains("API server listening"), "\(text)")
        let line = (try? String(contentsOfFile: metrics, encoding: .utf8))?.split(separator: "\n").last.map(String.init) ?? ""
        let flushed = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        #expect(flushed?["put_api_requests"] != nil, "\(line)")
        // Firecracker's start-up figures count from --start-time-us, with the parent's CPU time.
        let apiServer = flushed?["api_server"] as? [String: Any]
        let startup = apiServer?["process_startup_time_us"] as? Int ?? 0, cpu = apiServer?["process_startup_time_cpu_us"] as? Int ?? 0
        #expect(startup >= 2_000_000 && startup < 60_000_000, "\(line)")
        #expect(cpu >= 1500, "\(line)")
        #expect(text.contains("API server started after"), "\(text)")
    }

    /// `--module`: only lines from that module (or file) of ours reach the log.
    @Test func theModuleFilterKeepsOneModulesLines() throws {
        let directory = try Fixtures.scratchDirectory("fc-module")
        let log = directory + "/fc.log"
        let vmm = try VmmProcess(extra: ["--log-path", log, "--level", "Debug", "--show-log-origin", "--module", "API::VmController"])
        defer { _ = vmm.stop() }
        #expect(try Curl.request(vmm.socket, "GET", "/no-such-endpoint").status == 400)
        #expect(vmm.wait { (try? String(contentsOfFile: log, encoding: .utf8))?.contains("no-such-endpoint") == true })
        let lines = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(lines.contains { $0.contains("API server started after") }, "\(lines)")
        // ApiServer.swift is the same module, another file: filtered out.
        #expect(!lines.contains { $0.contains("API server listening") }, "\(lines)")
        #expect(lines.allSatisfy { $0.contains(" VmController.swift:") }, "\(lines)")
        let config = try #require(UnixHTTPClient.Response(status: 200, headers: [:], body: try Curl.request(vmm.socket, "GET", "/vm/config").body).json)
        #expect((config["logger"] as? [String: Any])?["module"] as? String == "API::VmController", "\(config)")
    }

    @Test func badFlagsAreRefusedNamingThem() throws {
        for (arguments, fragment) in [(["--module", "api_server::request"], "invalid --module: 'api_server::request' is not a kata-vmm module"),
                                      (["--module", "Devices::"], "invalid --module: 'Devices::'"),
                                      (["--level", "Loud"], "invalid --level 'Loud'"),
                                      (["--log-path", ""], "invalid --log-path"),
                                      (["--http-api-max-payload-size", "0"], "invalid --http-api-max-payload-size 0"),
                                      (["--http-api-max-payload-size", "1073741824"], "invalid --http-api-max-payload-size"),
                                      (["--mmds-size-limit", "0"], "invalid --mmds-size-limit 0"),
                                      (["--metadata", ""], "invalid --metadata"),
                                      (["--start-time-cpu-us", "5"], "need --start-time-us"),
                                      (["--start-time-us", String(UInt64.max)], "later than now on CLOCK_MONOTONIC"),
                                      (["--start-time-us", "-1"], "--start-time-us")] {
            let result = try Command.run(Fixtures.kataVmm.path, ["--api-sock", "/tmp/unused-\(UUID().uuidString.prefix(6))"] + arguments, timeout: 30)
            #expect(result.status == 64 && result.stderr.contains(fragment), "\(arguments): \(result.stderr)")
        }
        // A log path that cannot be opened is the VMM's error, as PUT /logger's is.
        let result = try Command.run(Fixtures.kataVmm.path, ["--api-sock", "/tmp/unused-\(UUID().uuidString.prefix(6))",
                                                               "--log-path", "/nonexistent/dir/fc.log"], timeout: 30)
        #expect(result.status == 1 && result.stderr.contains("log_path: cannot open '/nonexistent/dir/fc.log'"), "\(result.stderr)")
    }
}
