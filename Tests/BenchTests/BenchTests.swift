import Foundation
import TestSupport
import Testing
@testable import Bench

@Suite struct StatisticsTests {
    @Test func summaries() throws {
        let s = try #require(Statistics([5, 1, 4, 2, 3]))
        #expect(s.count == 5 && s.min == 1 && s.max == 5 && s.median == 3 && s.mean == 3)
        #expect(s.p90 == 5)  // nearest rank: ceil(0.9 * 5) = 5th
        let even = try #require(Statistics([10, 20, 30, 40]))
        #expect(even.median == 25)
        #expect(even.p90 == 40)
        let ten = try #require(Statistics((1...10).map(Double.init)))
        #expect(ten.p90 == 9)
        #expect(Statistics([]) == nil)
        #expect(Statistics([7])?.p90 == 7)
    }
}

@Suite struct SmapsParsingTests {
    static let rollup = """
        55d0c0a00000-7ffd1b5fe000 ---p 00000000 00:00 0                          [rollup]
        Rss:               13392 kB
        Pss:               12318 kB
        Pss_Dirty:          2252 kB
        Anonymous:          1140 kB
        Swap:                  0 kB
        """

    static let smaps = """
        55d0c0a00000-55d0c0b00000 r-xp 00000000 fe:00 1234                       /usr/bin/kata-vmm
        Size:               1024 kB
        Rss:                 900 kB
        7f0000000000-7f0008000000 rw-p 00000000 00:00 0
        Size:             131072 kB
        Rss:                 640 kB
        7f0010000000-7f0010021000 rw-p 00000000 00:00 0
        Size:                132 kB
        Rss:                  12 kB
        7f0020000000-7f0028200000 rw-p 00000000 00:00 0
        Size:             133120 kB
        Rss:                 100 kB
        """

    @Test func rollupFields() {
        let values = ProcessMemory.parseRollup(Self.rollup)
        #expect(values["Rss"] == 13392 && values["Pss"] == 12318 && values["Anonymous"] == 1140 && values["Swap"] == 0)
    }

    @Test func guestMappingsAreToldApart() {
        // Both guest-sized anonymous mappings (ours: exact, QEMU's: + alignment slack) count;
        // the binary and the small heap do not.
        #expect(ProcessMemory.guestResident(smaps: Self.smaps, guestKiB: 131072) == 740)
        #expect(ProcessMemory.guestResident(smaps: Self.smaps, guestKiB: 1 << 30) == 0)
        let memory = ProcessMemory(rssKiB: 13392, pssKiB: 12318, anonymousKiB: 1140, guestResidentKiB: 740)
        #expect(memory.overheadRssKiB == 12652 && memory.overheadPssKiB == 11578)
    }
}

/// `kata-bench boot --runs 2` with the probe guest: sane, positive figures for both VMMs.
@Suite struct KataBenchIntegrationTests {
    @Test func bootRunWritesSaneJson() throws {
        let qemu = "/usr/bin/qemu-system-x86_64"
        guard FileManager.default.isExecutableFile(atPath: qemu) else { try Fixtures.missing("qemu-system-x86") }
        let json = Fixtures.scratch.appendingPathComponent("bench-\(UUID().uuidString).json")
        let plots = Fixtures.scratch.appendingPathComponent("bench-plots-\(UUID().uuidString)")
        let bench = Fixtures.productsDirectory.appendingPathComponent("kata-bench").path
        let result = try Command.run("/bin/sh", ["-c", "cd '\(Fixtures.packageRoot.path)' && exec '\(bench)' all --runs 2 --vms 2 --concurrency 1,2 --json '\(json.path)' --plot '\(plots.path)' --vmm '\(Fixtures.kataVmm.path)'"],
                                     timeout: 300)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("| boot marker_ms |"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        let samples = try #require(object["bootSamples"] as? [[String: Any]])
        #expect(samples.count == 4)
        for vmm in ["kata-vmm", "qemu"] {
            let mine = samples.filter { $0["vmm"] as? String == vmm }
            #expect(mine.count == 2, "\(vmm)")
            for sample in mine {
                #expect((sample["markerMs"] as? Double ?? 0) > 0, "\(vmm): \(sample)")
                #expect((sample["cpuMs"] as? Double ?? 0) > 0, "\(vmm): \(sample)")
            }
        }
        #expect(samples.filter { $0["vmm"] as? String == "kata-vmm" }.allSatisfy { ($0["bootTimerMs"] as? Double ?? 0) > 0 })
        let summary = try #require(object["summary"] as? [String: [String: Any]])
        for key in ["start/kata-vmm", "start/qemu", "boot/kata-vmm", "boot/qemu", "memory/kata-vmm", "memory/qemu"] {
            #expect(summary[key] != nil, "\(key) missing in \(summary.keys)")
        }
        let memory = try #require(object["memorySamples"] as? [String: [[String: Any]]])
        for vmm in ["kata-vmm", "qemu"] {
            for sample in memory[vmm] ?? [] {
                let rss = sample["rssKiB"] as? Int ?? 0, guest = sample["guestResidentKiB"] as? Int ?? -1
                #expect(rss > 0 && guest >= 0 && guest < rss, "\(vmm): \(sample)")
            }
            #expect(memory[vmm]?.count == 2, "\(vmm)")
        }
        let starts = try #require(object["startSamples"] as? [[String: Any]])
        #expect(starts.count == 4, "\(starts)")
        for sample in starts {
            #expect((sample["apiReadyMs"] as? Double ?? 0) > 0, "\(sample)")
            #expect((sample["cpuMs"] as? Double ?? 0) > 0, "\(sample)")
        }
        let creation = try #require(object["creationSamples"] as? [[String: Any]])
        #expect(creation.count == 4, "\(creation)")
        for sample in creation {
            #expect(sample["failures"] as? Int == 0, "\(sample)")
            #expect((sample["vmsPerSecond"] as? Double ?? 0) > 0, "\(sample)")
            #expect((sample["perVmMs"] as? [Double])?.count == 2, "\(sample)")
        }
        #expect(result.stdout.contains("| VMs at once |"))
        for chart in ["start-api_ready_ms", "boot-marker_ms", "boot-cpu_ms", "memory", "creation-rate"] {
            let png = try Data(contentsOf: plots.appendingPathComponent("\(chart).png"))
            #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "\(chart).png is not a PNG")
            #expect(png.count > 2000, "\(chart).png is \(png.count) bytes")
        }
        let machine = try #require(object["machine"] as? [String: Any])
        #expect(["VMX", "SVM", "PVM", "unknown"].contains(machine["kvmFlavour"] as? String ?? ""))
    }
}
