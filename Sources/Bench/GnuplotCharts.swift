import Foundation

/// PNG charts of a kata-bench run, drawn by gnuplot (Debian's gnuplot-nox): the data goes
/// to plain .dat files beside a .gp script, so a chart can be re-drawn or restyled by hand.
public struct GnuplotCharts {
    /// Time samples per VMM (ms), one box-plot chart per metric ("boot-marker_ms", ...).
    public var boot: [(metric: String, samples: [BootBenchmark.Vmm: [Double]])] = []
    /// Median memory figures per VMM (KiB), by metric name.
    public var memory: [(metric: String, values: [BootBenchmark.Vmm: Double])] = []
    public var creation: [CreationRateBenchmark.Sample] = []
    /// "date, machine" line under every title.
    public var subtitle: String

    public var gnuplot: String

    public init(subtitle: String, gnuplot: String = "/usr/bin/gnuplot") {
        self.subtitle = subtitle
        self.gnuplot = gnuplot
    }

    /// Writes the charts into `directory`; returns the PNG paths. Throws if gnuplot fails.
    public func write(to directory: String) throws -> [String] {
        guard FileManager.default.isExecutableFile(atPath: gnuplot) else {
            throw BenchError("--plot needs gnuplot at \(gnuplot) (apt-get install gnuplot-nox)")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var pngs: [String] = []
        for (metric, samples) in boot where !samples.isEmpty {
            pngs.append(try render(directory, name: metric, script: bootScript(directory, metric, samples)))
        }
        if !memory.isEmpty { pngs.append(try render(directory, name: "memory", script: memoryScript(directory))) }
        if !creation.isEmpty { pngs.append(try render(directory, name: "creation-rate", script: creationScript(directory))) }
        return pngs
    }

    private func header(_ png: String, _ title: String) -> String {
        """
        set terminal pngcairo size 900,560 font ",10"
        set termoption noenhanced
        set output '\(png)'
        set title "\(title)\\n\(subtitle.replacingOccurrences(of: "\"", with: "'"))"
        set grid ytics
        set key top left

        """
    }

    private func bootScript(_ dir: String, _ metric: String, _ samples: [BootBenchmark.Vmm: [Double]]) throws -> String {
        var plots: [String] = []
        var labels: [String] = []
        for (index, vmm) in BootBenchmark.Vmm.allCases.enumerated() {
            guard let values = samples[vmm], !values.isEmpty else { continue }
            let file = "\(dir)/\(metric)-\(vmm.rawValue).dat"
            try values.map { String(format: "%.3f", $0) }.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
            plots.append("'\(file)' using (\(index + 1)):1 with boxplot lc \(index + 1) title '\(vmm.rawValue)'")
            plots.append("'\(file)' using (\(index + 1) + (rand(0) - 0.5) * 0.3):1 with points pt 7 ps 0.6 lc \(index + 1) notitle")
            labels.append("'\(vmm.rawValue)' \(index + 1)")
        }
        return header("\(dir)/\(metric).png", "\(Self.title(metric)): each sample, and its box plot") + """
            set style fill solid 0.25 border -1
            set style boxplot outliers pointtype 7
            set boxwidth 0.5
            set xtics (\(labels.joined(separator: ", ")))
            set xrange [0.3:\(BootBenchmark.Vmm.allCases.count).7]
            set ylabel "ms"
            set yrange [0:*]
            plot \(plots.joined(separator: ", \\\n     "))

            """
    }

    static func title(_ metric: String) -> String {
        switch metric {
        case "start-api_ready_ms": "VMM start: exec to API socket ready (QEMU: QMP, -S), ms"
        case "boot-marker_ms": "Boot: process start to the guest's marker line, ms"
        case "boot-boot_timer_ms": "Boot: process start to the boot-timer write, ms"
        case "boot-cpu_ms": "Boot: CPU time of the VMM process, ms"
        default: metric.replacingOccurrences(of: "_", with: " ")
        }
    }

    private func memoryScript(_ dir: String) throws -> String {
        let file = "\(dir)/memory.dat"
        var rows = ["metric " + BootBenchmark.Vmm.allCases.map(\.rawValue).joined(separator: " ")]
        for (metric, values) in memory {
            rows.append(metric + " " + BootBenchmark.Vmm.allCases.map { values[$0].map { String(format: "%.1f", $0 / 1024) } ?? "NaN" }.joined(separator: " "))
        }
        try rows.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let columns = BootBenchmark.Vmm.allCases.indices.map { "'\(file)' using \($0 + 2):xtic(1) title columnheader" }
        return header("\(dir)/memory.png", "Memory after boot, idle (median, MiB)") + """
            set style data histograms
            set style histogram clustered gap 1
            set style fill solid 0.6 border -1
            set ylabel "MiB"
            set yrange [0:*]
            set xtics rotate by -20
            plot \(columns.joined(separator: ", "))

            """
    }

    private func creationScript(_ dir: String) throws -> String {
        var plots: [String] = []
        for (index, vmm) in BootBenchmark.Vmm.allCases.enumerated() {
            let rows = creation.filter { $0.vmm == vmm }.sorted { $0.concurrency < $1.concurrency }
            guard !rows.isEmpty else { continue }
            let file = "\(dir)/creation-\(vmm.rawValue).dat"
            try rows.map { "\($0.concurrency) \(String(format: "%.3f", $0.vmsPerSecond))" }.joined(separator: "\n")
                .write(toFile: file, atomically: true, encoding: .utf8)
            plots.append("'\(file)' using 1:2 with linespoints lw 2 pt 7 lc \(index + 1) title '\(vmm.rawValue)'")
        }
        return header("\(dir)/creation-rate.png", "Creation rate: VMs up per second vs VMs started at once") + """
            set logscale x 2
            set xlabel "VMs started at once"
            set ylabel "VMs per second (to the boot marker)"
            set yrange [0:*]
            plot \(plots.joined(separator: ", "))

            """
    }

    private func render(_ dir: String, name: String, script: String) throws -> String {
        let path = "\(dir)/\(name).gp"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: gnuplot)
        process.arguments = [path]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchError("gnuplot \(path) failed: \(message)") }
        return "\(dir)/\(name).png"
    }
}
