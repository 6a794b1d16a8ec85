import Foundation
import TestSupport
import Testing

/// The balloon seen from a real guest (guest/probe/balloon.c): the probe touches 32 MiB,
/// the host raises the target through PATCH /balloon, the probe inflates with those pages,
/// and the VMM's resident memory falls by what was given back; the given-back page reads
/// as zeroes in the guest; GET /balloon and /balloon/statistics report it.
@Suite struct BalloonBootTests {
    @Test func inflatingGivesTheGuestsPagesBackToTheHost() throws {
        let probe = try Fixtures.probeGuest()
        let vmm = try VmmProcess()
        let metrics = vmm.path("metrics.json")
        let api = try UnixHTTPClient(path: vmm.socket)
        try RateLimiterBootTests.configureAndStart(api, [
            ("/boot-source", #"{"kernel_image_path":"\#(probe.path)","boot_args":"console=ttyS0 probe.mode=balloon"}"#),
            ("/machine-config", #"{"vcpu_count":1,"mem_size_mib":128}"#),
            ("/balloon", #"{"amount_mib":0,"deflate_on_oom":true,"stats_polling_interval_s":1}"#),
            ("/metrics", #"{"metrics_path":"\#(metrics)"}"#),
        ])
        #expect(vmm.wait { vmm.serial.contains("probe: balloon touched\n") }, "\(vmm.serial)\n\(vmm.log)")
        usleep(200_000)
        let touched = vmm.residentKiB
        let balloon = try api.request("GET", "/balloon").json
        #expect(balloon?["amount_mib"] as? Int == 0 && balloon?["deflate_on_oom"] as? Bool == true, "\(String(describing: balloon))")
        #expect(try api.request("PATCH", "/balloon", body: #"{"amount_mib":32}"#).status == 204)
        #expect(vmm.wait { vmm.serial.contains("probe: balloon inflated=8192\n") }, "\(vmm.serial)\n\(vmm.log)")
        let inflated = vmm.residentKiB
        print("kata-vmm RSS: \(touched) KiB with 32 MiB touched, \(inflated) KiB after inflating 32 MiB")
        #expect(touched - inflated >= 28 << 10, "RSS \(touched) KiB -> \(inflated) KiB")
        #expect(vmm.serial.contains("probe: balloon zeroed=1\n"), "\(vmm.serial)")
        let stats = try api.request("GET", "/balloon/statistics").json
        #expect(stats?["target_mib"] as? Int == 32 && stats?["actual_mib"] as? Int == 32 && stats?["actual_pages"] as? Int == 8192,
                "\(String(describing: stats))")
        #expect((try api.request("GET", "/balloon").json)?["amount_mib"] as? Int == 32)
        #expect(try api.request("PUT", "/actions", body: #"{"action_type":"FlushMetrics"}"#).status == 204)
        let line = try #require(try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n").last)
        let counters = (try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["balloon"] as? [String: Any]
        #expect(counters?["inflate_count"] as? Int == 8192, "\(String(describing: counters))")
        // Statistics cannot be switched off after boot; the interval can change.
        let off = try api.request("PATCH", "/balloon/statistics", body: #"{"stats_polling_interval_s":0}"#)
        #expect(off.status == 400 && off.faultMessage?.contains("cannot be switched off after boot") == true, "\(off)")
        #expect(try api.request("PATCH", "/balloon/statistics", body: #"{"stats_polling_interval_s":5}"#).status == 204)
        #expect((try api.request("GET", "/balloon").json)?["stats_polling_interval_s"] as? Int == 5)
        // More than the VM has is refused, and changes nothing.
        let tooMuch = try api.request("PATCH", "/balloon", body: #"{"amount_mib":129}"#)
        #expect(tooMuch.status == 400 && tooMuch.faultMessage?.contains("more than the VM's memory") == true, "\(tooMuch)")
        #expect((try api.request("GET", "/balloon").json)?["amount_mib"] as? Int == 32)
        vmm.stop()
    }
}
