import Foundation
import TestSupport
import Testing

/// Rate limiters seen from a real guest: the probe's I/O loop (guest/probe/io.c, one
/// request at a time) runs at the configured rate, a PATCH changes it live, and the
/// metrics count the throttling. Each bound is one that a slow or loaded machine cannot
/// break: a rate at most the limit, and after the limit is lifted, ten times the old
/// limit (the loop runs thousands of requests a second unthrottled).
@Suite struct RateLimiterBootTests {
    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Completions counted over `window` seconds of the probe's loop.
    static func rate(_ vmm: VmmProcess, window: Double) -> (count: Int, seconds: Double) {
        let clock = ContinuousClock()
        let start = clock.now
        let first = vmm.lastIoCount
        usleep(UInt32(window * 1_000_000))
        let last = vmm.lastIoCount
        return (last - first, seconds(clock.now - start))
    }

    /// PUTs each (path, body), then InstanceStart; each must answer 204.
    static func configureAndStart(_ api: UnixHTTPClient, _ steps: [(String, String)],
                                  sourceLocation: SourceLocation = #_sourceLocation) throws {
        for (path, body) in steps + [("/actions", #"{"action_type":"InstanceStart"}"#)] {
            let response = try api.request("PUT", path, body: body)
            #expect(response.status == 204, "PUT \(path): \(response)", sourceLocation: sourceLocation)
        }
    }

    static func metricsLine(_ api: UnixHTTPClient, _ path: String) throws -> [String: Any] {
        #expect(try api.request("PUT", "/actions", body: #"{"action_type":"FlushMetrics"}"#).status == 204)
        let line = try #require(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").last)
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test func driveOpsFollowTheLimitAndAPatchChangesItLive() throws {
        let probe = try Fixtures.probeGuest()
        let vmm = try VmmProcess()
        let disk = try ApiBootTests.makeDisk(vmm, "d0.img", mib: 1)
        let metrics = vmm.path("metrics.json")
        let api = try UnixHTTPClient(path: vmm.socket)
        // 10 ops per 500 ms: 20 reads a second.
        try Self.configureAndStart(api, [
            ("/boot-source", #"{"kernel_image_path":"\#(probe.path)","boot_args":"console=ttyS0 probe.mode=io"}"#),
            ("/drives/d0", #"{"drive_id":"d0","path_on_host":"\#(disk)","is_root_device":false,"rate_limiter":{"ops":{"size":10,"refill_time":500}}}"#),
            ("/metrics", #"{"metrics_path":"\#(metrics)"}"#),
        ])
        #expect(vmm.wait { vmm.lastIoCount >= 20 }, "\(vmm.serial)\n\(vmm.log)")
        let limited = Self.rate(vmm, window: 2)
        // 20 per second, plus the bucket's 10 and the 10 the count's granularity hides.
        #expect(Double(limited.count) <= 20 * limited.seconds + 20, "\(limited.count) reads in \(limited.seconds) s at 20/s")
        let drive = (try api.request("GET", "/vm/config").json?["drives"] as? [[String: Any]])?.first
        let ops = (drive?["rate_limiter"] as? [String: Any])?["ops"] as? [String: Any]
        #expect(ops?["size"] as? Int == 10 && ops?["refill_time"] as? Int == 500 && ops?["one_time_burst"] as? Int == 0,
                "\(String(describing: drive))")
        let throttled = try Self.metricsLine(api, metrics)["block_d0"] as? [String: Any]
        #expect((throttled?["rate_limiter_throttled_events"] as? Int ?? 0) > 0, "\(String(describing: throttled))")
        #expect((throttled?["rate_limiter_event_count"] as? Int ?? 0) > 0, "\(String(describing: throttled))")

        // Lowered live to 5 a second (size 5 per second, no burst).
        let lower = try api.request("PATCH", "/drives/d0", body: #"{"drive_id":"d0","rate_limiter":{"ops":{"size":5,"refill_time":1000}}}"#)
        #expect(lower.status == 204, "\(lower)")
        usleep(1_500_000)  // the old bucket's tokens are gone, the new one's first 5 too
        let slower = Self.rate(vmm, window: 2)
        #expect(Double(slower.count) <= 5 * slower.seconds + 15, "\(slower.count) reads in \(slower.seconds) s at 5/s")

        // Lifted: a bucket of size 0 removes the limit, as in Firecracker.
        let lifted = try api.request("PATCH", "/drives/d0", body: #"{"drive_id":"d0","rate_limiter":{"ops":{"size":0,"refill_time":0}}}"#)
        #expect(lifted.status == 204, "\(lifted)")
        let before = vmm.lastIoCount
        #expect(vmm.wait(timeout: 10) { vmm.lastIoCount >= before + 2000 }, "\(vmm.lastIoCount - before) reads after the limit was lifted")
        let free = Self.rate(vmm, window: 1)
        #expect(try api.request("GET", "/vm/config").json.map { (($0["drives"] as? [[String: Any]])?.first?["rate_limiter"]) is NSNull } == true)
        print(String(format: "probe blk reads: %.1f/s at 20/s, %.1f/s at 5/s, %.0f/s unlimited",
                     Double(limited.count) / limited.seconds, Double(slower.count) / slower.seconds, Double(free.count) / free.seconds))
        vmm.stop()
    }

    @Test func entropyBandwidthFollowsTheLimit() throws {
        let probe = try Fixtures.probeGuest()
        let vmm = try VmmProcess()
        let metrics = vmm.path("metrics.json")
        let api = try UnixHTTPClient(path: vmm.socket)
        // 640 bytes per 500 ms, after a one-time burst of 6400: 20 of the probe's 64-byte
        // requests a second once the first 100 are spent.
        try Self.configureAndStart(api, [
            ("/boot-source", #"{"kernel_image_path":"\#(probe.path)","boot_args":"console=ttyS0 probe.mode=io probe.io=rng"}"#),
            ("/entropy", #"{"rate_limiter":{"bandwidth":{"size":640,"one_time_burst":6400,"refill_time":500}}}"#),
            ("/metrics", #"{"metrics_path":"\#(metrics)"}"#),
        ])
        #expect(vmm.wait { vmm.lastIoCount >= 120 }, "\(vmm.serial)\n\(vmm.log)")
        let limited = Self.rate(vmm, window: 2)
        #expect(Double(limited.count) <= 20 * limited.seconds + 20, "\(limited.count) requests in \(limited.seconds) s at 20/s")
        let entropy = (try api.request("GET", "/vm/config").json?["entropy"] as? [String: Any])?["rate_limiter"] as? [String: Any]
        #expect((entropy?["bandwidth"] as? [String: Any])?["one_time_burst"] as? Int == 6400, "\(String(describing: entropy))")
        let counters = try Self.metricsLine(api, metrics)["entropy"] as? [String: Any]
        #expect((counters?["entropy_rate_limiter_throttled"] as? Int ?? 0) > 0, "\(String(describing: counters))")
        #expect((counters?["entropy_bytes"] as? Int ?? 0) >= 120 * 64, "\(String(describing: counters))")
        print(String(format: "probe rng requests: %.1f/s at 1280 bytes/s", Double(limited.count) / limited.seconds))
        vmm.stop()
    }
}
