import Foundation

/// Everything one kata-bench run produced: the samples, their summaries and the machine.
/// It is what --json writes, and what the tables and the charts are drawn from.
public struct BenchReport: Codable {
    public var machine: MachineDescription
    public var guest: String
    public var cpus: Int
    public var memoryMiB: Int
    public var startSamples: [StartBenchmark.Sample] = []
    public var bootSamples: [BootBenchmark.Sample] = []
    public var memorySamples: [String: [ProcessMemory]] = [:]
    public var creationSamples: [CreationRateBenchmark.Sample] = []
    public var devices: [ThroughputResult] = []
    public var fs: [ThroughputResult] = []
    public var containerSamples: [ContainerStartBenchmark.Sample] = []
    /// By "<benchmark>/<vmm or runtime>" ("boot/kata-vmm"), then by metric ("marker_ms").
    public var summary: [String: [String: Statistics]] = [:]

    public init(machine: MachineDescription, guest: String, cpus: Int, memoryMiB: Int) {
        self.machine = machine
        self.guest = guest
        self.cpus = cpus
        self.memoryMiB = memoryMiB
    }

    /// The --json document: pretty-printed with sorted keys, so that two runs diff cleanly.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}
