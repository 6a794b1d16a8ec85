import Foundation

/// The Markdown tables kata-bench prints: figures as min / median / p90 beside the ratio of
/// the medians. A table whose benchmark did not run is empty.
extension BenchReport {
    /// Start, boot and memory: kata-vmm beside QEMU microvm, then the machine and the guest.
    public var vmmTable: String {
        func cell(_ s: Statistics?) -> String {
            guard let s else { return "n/a" }
            return String(format: "%.1f / %.1f / %.1f", s.min, s.median, s.p90)
        }
        var rows = ["| metric (min / median / p90) | kata-vmm | QEMU microvm | ratio |", "|---|---|---|---|"]
        for (group, metrics) in [("start", ["api_ready_ms", "cpu_ms"]),
                                 ("boot", ["marker_ms", "boot_timer_ms", "cpu_ms"]),
                                 ("memory", ["rss_kib", "pss_kib", "overhead_rss_kib", "overhead_pss_kib", "guest_resident_kib"])] {
            for metric in metrics {
                let ours = summary["\(group)/kata-vmm"]?[metric]
                let qemu = summary["\(group)/qemu"]?[metric]
                guard ours != nil || qemu != nil else { continue }
                let ratio = (ours?.median).flatMap { o in (qemu?.median).map { q in q > 0 ? String(format: "%.2f", o / q) : "n/a" } } ?? "n/a"
                let qemuCell = qemu == nil ? (metric == "boot_timer_ms" ? "no boot-timer device" : "n/a") : cell(qemu)
                rows.append("| \(group) \(metric) | \(cell(ours)) | \(qemuCell) | \(ratio) |")
            }
        }
        let m = machine
        return rows.joined(separator: "\n") + "\n\n\(m.date), \(m.cpuModel), \(m.cpus) CPUs, Linux \(m.kernel), KVM \(m.kvmFlavour); guest \(guest), \(cpus) vCPU, \(memoryMiB) MiB"
    }

    /// VMs per second (and per host core) at each concurrency level.
    public var creationTable: String {
        guard !creationSamples.isEmpty else { return "" }
        var rows = ["| VMs at once | kata-vmm VMs/s (per core) | QEMU VMs/s (per core) | ratio | failures (ours/QEMU) |", "|---|---|---|---|---|"]
        let levels = Set(creationSamples.map(\.concurrency)).sorted()
        for level in levels {
            let ours = creationSamples.first { $0.concurrency == level && $0.vmm == .kataVmm }
            let qemu = creationSamples.first { $0.concurrency == level && $0.vmm == .qemu }
            func cell(_ s: CreationRateBenchmark.Sample?) -> String {
                s.map { String(format: "%.1f (%.1f)", $0.vmsPerSecond, $0.vmsPerSecondPerCore) } ?? "QEMU not available"
            }
            let ratio = ours.flatMap { o in qemu.map { q in q.vmsPerSecond > 0 ? String(format: "%.2f", o.vmsPerSecond / q.vmsPerSecond) : "n/a" } } ?? "n/a"
            rows.append("| \(level) | \(cell(ours)) | \(cell(qemu)) | \(ratio) | \(ours?.failures ?? 0)/\(qemu.map { "\($0.failures)" } ?? "-") |")
        }
        return "\n\n" + rows.joined(separator: "\n")
    }

    /// virtio-blk and vsock throughput in each guest and on the host, then the runs' notes.
    public var devicesTable: String {
        guard !devices.isEmpty else { return "" }
        func figure(_ source: String, _ key: String) -> String {
            devices.first { $0.source == source }?.figures[key].map { String(format: "%.1f", $0) } ?? "n/a"
        }
        var rows = ["| device throughput | kata-vmm guest | QEMU guest | host (same code) |", "|---|---|---|---|"]
        rows.append("| virtio-blk 4 KiB random read, MiB/s | \(figure("kata-vmm", "guest_blk_randread_4k_mibs")) | \(figure("qemu", "guest_blk_randread_4k_mibs")) | \(figure("host", "host_blk_randread_4k_mibs")) |")
        rows.append("| virtio-blk 4 KiB random read, IOPS | \(figure("kata-vmm", "guest_blk_randread_4k_iops")) | \(figure("qemu", "guest_blk_randread_4k_iops")) | \(figure("host", "host_blk_randread_4k_iops")) |")
        rows.append("| virtio-blk 1 MiB sequential write, MiB/s | \(figure("kata-vmm", "guest_blk_seqwrite_1m_mibs")) | \(figure("qemu", "guest_blk_seqwrite_1m_mibs")) | \(figure("host", "host_blk_seqwrite_1m_mibs")) |")
        rows.append("| vsock stream guest->host, MiB/s (host side) | \(figure("kata-vmm", "vsock_host_mibs")) | not measured | \(figure("host", "host_stream_mibs")) (Unix socket) |")
        let notes = devices.flatMap { r in r.notes.map { "\(r.source): \($0)" } }
        return "\n\n" + rows.joined(separator: "\n") + (notes.isEmpty ? "" : "\n" + notes.joined(separator: "\n"))
    }

    /// File throughput on virtio-fs and on an ext4 virtio-blk disk in each guest, and on the
    /// host; two decimals, because an emulated guest's figures are well under 1 MiB/s.
    public var fsTable: String {
        guard !fs.isEmpty else { return "" }
        func figure(_ source: String, _ key: String) -> String {
            fs.first { $0.source == source }?.figures[key].map { String(format: "%.2f", $0) } ?? "n/a"
        }
        var rows = ["| file throughput | kata-vmm guest | QEMU guest | host (same code, same directory) |", "|---|---|---|---|"]
        for (name, key, unit) in [("1 MiB sequential write", "seqwrite_1m_mibs", "MiB/s"), ("1 MiB sequential read (guest caches dropped)", "seqread_1m_mibs", "MiB/s"),
                                  ("create+stat+unlink", "meta_cycles_per_s", "cycles/s")] {
            for (filesystem, prefix) in [("virtio-fs", "guest_virtiofs"), ("ext4 on virtio-blk", "guest_ext4")] {
                rows.append("| \(filesystem) \(name), \(unit) | \(figure("kata-vmm", "\(prefix)_\(key)")) | \(figure("qemu", "\(prefix)_\(key)")) | \(figure("host", "host_fs_\(key)")) |")
            }
        }
        let notes = fs.flatMap { r in r.notes.map { "\(r.source): \($0)" } }
        return "\n\n" + rows.joined(separator: "\n") + (notes.isEmpty ? "" : "\n" + notes.joined(separator: "\n"))
    }

    /// `run` of busybox true under kata-runtime beside runc.
    public var containerTable: String {
        guard !containerSamples.isEmpty else { return "" }
        func cell(_ name: String) -> String {
            let failed = containerSamples.filter { $0.runtime == name && $0.exitStatus != 0 }.count
            guard let s = summary["container/\(name)"]?["run_true_ms"] else {
                return containerSamples.contains { $0.runtime == name } ? "every run failed" : "not available"
            }
            return String(format: "%.1f / %.1f / %.1f", s.min, s.median, s.p90) + (failed > 0 ? " (\(failed) failed)" : "")
        }
        let ours = summary["container/kata-runtime"]?["run_true_ms"]?.median
        let theirs = summary["container/runc"]?["run_true_ms"]?.median
        let ratio = ours.flatMap { o in theirs.map { String(format: "%.1f", o / $0) } } ?? "n/a"
        return "\n\n| container `run` of busybox true, ms (min / median / p90) | kata-runtime | runc | ratio |\n|---|---|---|---|\n"
            + "| exec to exit | \(cell("kata-runtime")) | \(cell("runc")) | \(ratio) |"
    }
}
