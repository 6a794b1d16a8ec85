import ArgumentParser

/// `kata-bench`: boot time and memory of kata-vmm beside QEMU microvm, alternating the two
/// in one run, reported as min/median/p90 and the ratio of the medians.
@main
struct KataBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kata-bench",
        abstract: "Measure kata-vmm beside QEMU microvm (boot time, memory overhead).",
        subcommands: [Start.self, Boot.self, Memory.self, Creation.self, Devices.self, Fs.self, Container.self, All.self])
}
