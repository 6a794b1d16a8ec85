import Foundation
import Testing
@testable import Bench

/// The tables kata-bench prints and the JSON it writes, from a report built by hand.
@Suite struct BenchReportTests {
    static let machine = MachineDescription(cpuModel: "Test CPU", cpus: 4, kernel: "6.1.0", kvmFlavour: "VMX",
                                            date: "2026-01-01T00:00:00Z")

    static func report() -> BenchReport {
        BenchReport(machine: machine, guest: "probe", cpus: 1, memoryMiB: 128)
    }

    @Test func vmmTableListsMeasuredMetricsWithRatioAndMachine() throws {
        var report = Self.report()
        report.summary["boot/kata-vmm"] = ["marker_ms": try #require(Statistics([10, 20, 30]))]
        report.summary["boot/qemu"] = ["marker_ms": try #require(Statistics([40, 80, 120]))]
        report.summary["memory/kata-vmm"] = ["rss_kib": try #require(Statistics([1000]))]
        let lines = report.vmmTable.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines == [
            "| metric (min / median / p90) | kata-vmm | QEMU microvm | ratio |",
            "|---|---|---|---|",
            "| boot marker_ms | 10.0 / 20.0 / 30.0 | 40.0 / 80.0 / 120.0 | 0.25 |",
            "| memory rss_kib | 1000.0 / 1000.0 / 1000.0 | n/a | n/a |",
            "",
            "2026-01-01T00:00:00Z, Test CPU, 4 CPUs, Linux 6.1.0, KVM VMX; guest probe, 1 vCPU, 128 MiB",
        ])
    }

    @Test func qemuHasNoBootTimerDevice() throws {
        var report = Self.report()
        report.summary["boot/kata-vmm"] = ["boot_timer_ms": try #require(Statistics([5]))]
        #expect(report.vmmTable.contains("| boot boot_timer_ms | 5.0 / 5.0 / 5.0 | no boot-timer device | n/a |"))
    }

    @Test func tablesOfBenchmarksThatDidNotRunAreEmpty() {
        let report = Self.report()
        #expect(report.creationTable.isEmpty && report.devicesTable.isEmpty && report.fsTable.isEmpty && report.containerTable.isEmpty)
    }

    @Test func creationTableWithoutQemu() {
        var report = Self.report()
        report.creationSamples = [
            .init(vmm: .kataVmm, concurrency: 2, vms: 4, failures: 1, wallSeconds: 1, vmsPerSecond: 3, vmsPerSecondPerCore: 0.75, perVmMs: []),
            .init(vmm: .kataVmm, concurrency: 1, vms: 4, failures: 0, wallSeconds: 2, vmsPerSecond: 2, vmsPerSecondPerCore: 0.5, perVmMs: []),
        ]
        #expect(report.creationTable == """


            | VMs at once | kata-vmm VMs/s (per core) | QEMU VMs/s (per core) | ratio | failures (ours/QEMU) |
            |---|---|---|---|---|
            | 1 | 2.0 (0.5) | QEMU not available | n/a | 0/- |
            | 2 | 3.0 (0.8) | QEMU not available | n/a | 1/- |
            """)
    }

    @Test func containerTableCountsFailedRuns() throws {
        var report = Self.report()
        report.containerSamples = [
            .init(runtime: "kata-runtime", wallMs: 100, exitStatus: 0),
            .init(runtime: "kata-runtime", wallMs: 900, exitStatus: 1),
            .init(runtime: "runc", wallMs: 10, exitStatus: 1),
        ]
        report.summary["container/kata-runtime"] = ["run_true_ms": try #require(Statistics([100]))]
        #expect(report.containerTable.hasSuffix("| exec to exit | 100.0 / 100.0 / 100.0 (1 failed) | every run failed | n/a |"))
    }

    @Test func devicesTableShowsFiguresAndNotes() {
        var report = Self.report()
        report.devices = [
            .init(source: "host", figures: ["host_blk_randread_4k_mibs": 512], notes: []),
            .init(source: "qemu", figures: [:], notes: ["no vhost-vsock"]),
        ]
        let table = report.devicesTable
        #expect(table.contains("| virtio-blk 4 KiB random read, MiB/s | n/a | n/a | 512.0 |"))
        #expect(table.hasSuffix("\nqemu: no vhost-vsock"))
    }

    /// Each operation on both guest filesystems, the host's figure on both rows.
    @Test func fsTableShowsBothFilesystemsBesideTheHost() {
        var report = Self.report()
        report.fs = [
            .init(source: "host", figures: ["host_fs_seqread_1m_mibs": 2048], notes: []),
            .init(source: "kata-vmm", figures: ["guest_virtiofs_seqread_1m_mibs": 3.5, "guest_ext4_seqread_1m_mibs": 2.25], notes: []),
            .init(source: "qemu", figures: [:], notes: ["QEMU not available"]),
        ]
        let table = report.fsTable
        #expect(table.contains("| virtio-fs 1 MiB sequential read (guest caches dropped), MiB/s | 3.50 | n/a | 2048.00 |"), "\(table)")
        #expect(table.contains("| ext4 on virtio-blk 1 MiB sequential read (guest caches dropped), MiB/s | 2.25 | n/a | 2048.00 |"), "\(table)")
        #expect(table.contains("| virtio-fs create+stat+unlink, cycles/s | n/a | n/a | n/a |"))
        #expect(table.hasSuffix("\nqemu: QEMU not available"))
    }

    @Test func jsonHasSortedKeysAndRoundTrips() throws {
        var report = Self.report()
        report.summary["boot/kata-vmm"] = ["cpu_ms": try #require(Statistics([1, 2]))]
        let data = try report.json()
        let text = String(decoding: data, as: UTF8.self)
        let keys = ["bootSamples", "containerSamples", "cpus", "creationSamples", "devices", "fs", "guest", "machine",
                    "memoryMiB", "memorySamples", "startSamples", "summary"]
        let positions = keys.map { text.range(of: "\n  \"\($0)\"")?.lowerBound }
        #expect(positions.allSatisfy { $0 != nil })
        #expect(positions.compactMap { $0 } == positions.compactMap { $0 }.sorted())
        let decoded = try JSONDecoder().decode(BenchReport.self, from: data)
        #expect(decoded.summary == report.summary && decoded.machine == report.machine)
    }
}
