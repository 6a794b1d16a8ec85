import Foundation
import Glibc
import TestSupport
import Testing

/// kata-vmm with guest RAM from the hugetlb pool (`--huge-pages`, the API's `huge_pages:
/// "2M"`): the probe boots on 2 MiB pages, and a pool too small is a clean error at start.
@Suite struct HugePageBootTests {
    @Test func theProbeBootsOnHugePagesAndAShortPoolIsACleanError() throws {
        let probe = try Fixtures.probeGuest().path
        try HugePagePool.with(pages: 32) {
            let vmm = try VmmProcess(extra: ["--kernel", probe, "--cmdline", "probe.mode=count", "--memory", "64", "--huge-pages"], api: false)
            #expect(vmm.wait { vmm.lastTick >= 1 }, "\(vmm.log)")
            #expect(HugePagePool.kernelPageSizeKiB(pid: vmm.process.processIdentifier, named: "/memfd:guest-ram") == 2048, "guest RAM is not on huge pages")
            _ = vmm.stop()
            // 32 pages are 64 MiB: 128 MiB cannot be reserved.
            let short = try Command.run(Fixtures.kataVmm.path, ["--kernel", probe, "--memory", "128", "--huge-pages"], timeout: 30)
            #expect(short.status == 1 && short.stderr.contains("cannot allocate 128 MiB of guest memory: Cannot allocate memory"), "\(short.stderr)")
            let odd = try Command.run(Fixtures.kataVmm.path, ["--kernel", probe, "--memory", "65", "--huge-pages"], timeout: 30)
            #expect(odd.status != 0 && odd.stderr.contains("not a whole number of 2 MiB huge pages"), "\(odd.stderr)")
        }
    }

    @Test func theApiTakesAndShowsHugePages() throws {
        let vmm = try VmmProcess()
        let api = try UnixHTTPClient(path: vmm.socket)
        #expect(try api.request("PUT", "/machine-config", body: #"{"vcpu_count":1,"mem_size_mib":64,"huge_pages":"2M"}"#).status == 204)
        #expect(try api.request("GET", "/machine-config").json?["huge_pages"] as? String == "2M")
        #expect(try api.request("PATCH", "/machine-config", body: #"{"huge_pages":"None"}"#).status == 204)
        #expect(try api.request("GET", "/machine-config").json?["huge_pages"] as? String == "None")
    }
}
