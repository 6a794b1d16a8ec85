import Foundation
import TestSupport
import Testing

/// The probe guest booted through `kata-vmm` on real KVM: exact serial output and exit
/// status for each way a guest can end.
@Suite struct ProbeGuestTests {
    static let resetExit: Int32 = 2
    static let tripleFaultExit: Int32 = 3

    func runVmm(_ arguments: [String], timeout: Double = 60, stdin: String? = nil) throws -> Command.Result {
        try Command.run(Fixtures.kataVmm.path, arguments, stdin: stdin, timeout: timeout)
    }

    /// What the probe prints for `memoryMiB` of RAM below 3 GiB and `vcpus` vCPUs.
    static func expectedReport(cmdline: String, memoryMiB: UInt64, vcpus: Int, status: Int = 0,
                               modules: [String] = [], ending: String = "probe: i8042 reset") -> String {
        let high = (memoryMiB << 20) - 0x100000
        let ramKib = (0x9FC00 + high) >> 10
        return ([
            "probe: hello from the probe guest",
            "probe: ok start_info magic",
            "probe: start_info version=1",
            "probe: cmdline=\(cmdline)",
            "probe: memmap entries=4",
            "probe: memmap 0x0 size 0x9fc00 type 1",
            "probe: memmap 0x9fc00 size 0x400 type 2",
            "probe: memmap 0xe0000 size 0x20000 type 2",
            "probe: memmap 0x100000 size 0x\(String(high, radix: 16)) type 1",
            "probe: ram_kib=\(ramKib)",
            "probe: modules=\(modules.count)",
        ] + modules + [
            "probe: hypervisor=KVMKVMKVM",
            "probe: bsp_apic_id=0",
            "probe: ok cpuid hypervisor bit",
            "probe: mptable_cpus=\(vcpus)",
            "probe: ok mp table",
            "probe: madt_cpus=\(vcpus)",
            "probe: ok acpi madt matches mp table",
            "probe: boot-timer written",
            "probe: status=\(status)",
            ending,
        ]).joined(separator: "\n") + "\n"
    }

    @Test func bootsThroughPvhReportsAndResets() throws {
        let probe = try Fixtures.probeGuest()
        let cmdline = "console=ttyS0 probe.check=1"
        let result = try runVmm(["--kernel", probe.path, "--cmdline", cmdline])
        #expect(result.stdout == Self.expectedReport(cmdline: cmdline, memoryMiB: 128, vcpus: 1))
        #expect(result.status == Self.resetExit, "\(result.stderr)")
        #expect(result.stderr.contains("Guest-boot-time = "))
        #expect(result.stderr.contains("Guest-boot-time since InstanceStart = "))
        #expect(result.stderr.contains("first KVM_RUN"))
        #expect(result.stderr.contains("guest requested a reset"))
    }

    @Test func smpTopologyAndStatus() throws {
        let probe = try Fixtures.probeGuest()
        let cmdline = "probe.exit=7"
        let result = try runVmm(["--kernel", probe.path, "--cmdline", cmdline, "--cpus", "4", "--memory", "64"])
        #expect(result.stdout == Self.expectedReport(cmdline: cmdline, memoryMiB: 64, vcpus: 4, status: 7))
        #expect(result.status == Self.resetExit)
    }

    @Test func memoryAboveFourGiB() throws {
        let probe = try Fixtures.probeGuest()
        let result = try runVmm(["--kernel", probe.path, "--cmdline", "x", "--memory", "4200"])
        #expect(result.status == Self.resetExit, "\(result.stderr)")
        #expect(result.stdout.contains("probe: memmap entries=5\n"))
        #expect(result.stdout.contains("probe: memmap 0x100000 size 0xbff00000 type 1\n"))
        #expect(result.stdout.contains("probe: memmap 0x100000000 size 0x\(String((4200 - 3072) << 20, radix: 16)) type 1\n"))
        #expect(result.stdout.contains("probe: ram_kib=\((0x9FC00 + (3 << 30) - 0x100000 + ((4200 - 3072) << 20)) >> 10)\n"))
    }

    @Test func initrdArrivesAsAPvhModule() throws {
        let probe = try Fixtures.probeGuest()
        let initrd = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
        let file = Fixtures.scratch.appendingPathComponent("probe-initrd-\(UUID().uuidString)")
        try Data(initrd).write(to: file)
        var hash: UInt32 = 0
        for byte in initrd { hash = hash &* 31 &+ UInt32(byte) }
        let result = try runVmm(["--kernel", probe.path, "--initrd", file.path, "--cmdline", "y"])
        #expect(result.stdout == Self.expectedReport(
            cmdline: "y", memoryMiB: 128, vcpus: 1,
            modules: ["probe: module 0 size=4096 hash=0x\(String(hash, radix: 16))"]))
    }

    @Test func tripleFaultIsReportedWithRegisters() throws {
        let probe = try Fixtures.probeGuest()
        let result = try runVmm(["--kernel", probe.path, "--cmdline", "probe.mode=triplefault"])
        #expect(result.status == Self.tripleFaultExit)
        #expect(result.stdout.hasSuffix("probe: triple fault\n"))
        #expect(result.stderr.contains("triple fault"))
        #expect(result.stderr.contains("RIP=0x") && result.stderr.contains("IDT=0x0/0"))
    }

    @Test func acpiPoweroffExitsZero() throws {
        let probe = try Fixtures.probeGuest()
        let result = try runVmm(["--kernel", probe.path, "--cmdline", "probe.mode=poweroff"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasSuffix("probe: acpi poweroff\n"))
        #expect(result.stderr.contains("guest powered off"))
    }

    /// A guest that never exits (halted with interrupts off, or spinning on every vCPU) is
    /// stopped by the test's deadline (SIGTERM); the VMM kicks its vCPUs and exits 128+15.
    @Test(arguments: ["hang", "spin"])
    func aGuestThatNeverExitsIsStopped(mode: String) throws {
        let probe = try Fixtures.probeGuest()
        let result = try runVmm(["--kernel", probe.path, "--cmdline", "probe.mode=\(mode)", "--cpus", "2"], timeout: 3)
        #expect(result.timedOut)
        #expect(result.status == 128 + SIGTERM, "\(result.stderr)")
        #expect(result.stderr.contains("stopped by signal 15"))
        #expect(result.stdout.contains(mode == "hang" ? "probe: halting forever" : "probe: spinning forever"))
    }

    @Test func serialToAFile() throws {
        let probe = try Fixtures.probeGuest()
        let file = Fixtures.scratch.appendingPathComponent("serial-\(UUID().uuidString).log")
        let result = try runVmm(["--kernel", probe.path, "--cmdline", "z", "--serial", "file:\(file.path)"])
        #expect(result.stdout == "")
        #expect(try String(contentsOf: file, encoding: .utf8) == Self.expectedReport(cmdline: "z", memoryMiB: 128, vcpus: 1))
        let none = try runVmm(["--kernel", probe.path, "--serial", "none"])
        #expect(none.stdout == "" && none.status == Self.resetExit)
    }

    /// A hostile driver (guest/probe/hostile.c) against vsock, rng and blk through the real
    /// transport: the VMM neither traps nor stalls, the broken rng alone needs a reset, and
    /// the disk still serves reads after it.
    @Test func aHostileDriverBreaksOnlyTheDeviceItAttacks() throws {
        let probe = try Fixtures.probeGuest()
        let disk = Fixtures.scratch.appendingPathComponent("hostile-\(UUID().uuidString).img")
        try (Data("KATA".utf8) + Data(count: (1 << 20) - 4)).write(to: disk)
        let uds = Fixtures.scratch.appendingPathComponent("hostile-\(UUID().uuidString.prefix(8)).sock").path
        let result = try runVmm(["--kernel", probe.path, "--cmdline", "probe.mode=hostile", "--memory", "128",
                                 "--vsock", "cid=3,uds=\(uds)", "--rng", "--disk", "path=\(disk.path)"])
        #expect(result.status == Self.resetExit, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").filter { $0.hasPrefix("probe: hostile") }.map(String.init)
        #expect(lines == [
            "probe: hostile vsock-rx-unready tx-used=1 status=0xf",
            "probe: hostile rng-indirect-64MiB used=4 status=0xf",
            "probe: hostile rng-indirect-64MiB total-len=0 status=0xf",
            "probe: hostile rng-good len=64 status=0xf",
            "probe: hostile rng-runaway needs-reset=1 status=0x4f",
            "probe: hostile rng-after-failure used=5 status=0x4f",
            "probe: hostile blk-read len=513 status=0xf",
            "probe: hostile blk-read first-word=\(0x4154_414B as UInt32) status=0x0",
            "probe: hostile done",
        ], "\(result.stdout)\n\(result.stderr)")
        let failures = result.stderr.split(separator: "\n").filter { $0.contains("needs a reset") }
        #expect(failures.count == 1 && failures[0].contains("virtio-rng"), "\(result.stderr)")
    }

    @Test func stdinPipeDoesNotDisturbTheGuest() throws {
        let probe = try Fixtures.probeGuest()
        let result = try runVmm(["--kernel", probe.path, "--cmdline", "w"], stdin: "typed input\n")
        #expect(result.stdout == Self.expectedReport(cmdline: "w", memoryMiB: 128, vcpus: 1))
    }
}
