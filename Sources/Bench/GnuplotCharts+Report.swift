import Foundation

/// The charts of one run: box plots of the start and boot samples, bars of the median
/// memory figures, and the creation rate by concurrency.
extension GnuplotCharts {
    public init(report: BenchReport) {
        let m = report.machine
        self.init(subtitle: "\(m.date), \(m.cpuModel), \(m.cpus) CPUs, KVM \(m.kvmFlavour); guest \(report.guest)")
        for metric in ["marker_ms", "boot_timer_ms", "cpu_ms"] {
            var samples: [BootBenchmark.Vmm: [Double]] = [:]
            for vmm in BootBenchmark.Vmm.allCases {
                let mine = report.bootSamples.filter { $0.vmm == vmm }
                let values: [Double] = switch metric {
                case "marker_ms": mine.compactMap(\.markerMs)
                case "boot_timer_ms": mine.compactMap(\.bootTimerMs)
                default: mine.map(\.cpuMs)
                }
                if !values.isEmpty { samples[vmm] = values }
            }
            if !samples.isEmpty { boot.append(("boot-\(metric)", samples)) }
        }
        var ready: [BootBenchmark.Vmm: [Double]] = [:]
        for vmm in BootBenchmark.Vmm.allCases {
            let values = report.startSamples.filter { $0.vmm == vmm }.compactMap(\.apiReadyMs)
            if !values.isEmpty { ready[vmm] = values }
        }
        if !ready.isEmpty { boot.insert(("start-api_ready_ms", ready), at: 0) }
        for metric in ["rss_kib", "pss_kib", "overhead_rss_kib", "overhead_pss_kib"] {
            var values: [BootBenchmark.Vmm: Double] = [:]
            for vmm in BootBenchmark.Vmm.allCases {
                if let median = report.summary["memory/\(vmm.rawValue)"]?[metric]?.median { values[vmm] = median }
            }
            if !values.isEmpty { memory.append((metric.replacingOccurrences(of: "_kib", with: ""), values)) }
        }
        creation = report.creationSamples
    }
}
