import Foundation
import Glibc

/// Boot time and memory of our VMM beside QEMU microvm, alternating the two on the same
/// guest, memory size and vCPU count, as Firecracker measures: process start to the
/// guest's boot-timer write (ours) and to a marker line on the serial console (both).
public struct BootBenchmark {
    /// One of the two VMMs under test.
    public enum Vmm: String, Codable, CaseIterable, Sendable { case kataVmm = "kata-vmm", qemu }

    public struct Guest: Sendable {
        public var kernel: String
        public var initrd: String?
        public var cmdline: String
        /// A serial line that marks the guest up.
        public var marker: String
        /// For memory samples: a line after which the guest idles, and the cmdline that makes it idle.
        public var idleMarker: String
        public var idleCmdline: String
        /// QEMU's -cpu for this guest (the shared kernel needs the emulator-safe model).
        public var qemuCpu: String?
        public var isProbe: Bool

        public init(kernel: String, initrd: String?, cmdline: String, marker: String, idleMarker: String,
                    idleCmdline: String, qemuCpu: String?, isProbe: Bool) {
            self.kernel = kernel
            self.initrd = initrd
            self.cmdline = cmdline
            self.marker = marker
            self.idleMarker = idleMarker
            self.idleCmdline = idleCmdline
            self.qemuCpu = qemuCpu
            self.isProbe = isProbe
        }

        public static func probe(_ path: String) -> Guest {
            Guest(kernel: path, initrd: nil, cmdline: "console=ttyS0", marker: "probe: status=",
                  idleMarker: "probe: halting forever", idleCmdline: "console=ttyS0 probe.mode=hang", qemuCpu: nil, isProbe: true)
        }
    }

    public struct Sample: Codable, Sendable {
        public var vmm: Vmm
        /// Process start to the marker line, ms.
        public var markerMs: Double?
        /// Process start to the boot-timer write as the VMM logged it, ms (kata-vmm only).
        public var bootTimerMs: Double?
        /// CPU the VMM process used in the whole run, ms (probe: boot to exit).
        public var cpuMs: Double
        public var exitStatus: Int32
    }

    public var vmmPath: String
    public var qemuPath: String?
    public var guest: Guest
    public var cpus: Int
    public var memoryMiB: Int
    public var timeout: Double

    public init(vmmPath: String, qemuPath: String?, guest: Guest, cpus: Int = 1, memoryMiB: Int = 128, timeout: Double = 300) {
        self.vmmPath = vmmPath
        self.qemuPath = qemuPath
        self.guest = guest
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.timeout = timeout
    }

    func arguments(_ vmm: Vmm, cmdline: String) -> (String, [String])? {
        switch vmm {
        case .kataVmm:
            var args = ["--kernel", guest.kernel, "--cpus", "\(cpus)", "--memory", "\(memoryMiB)", "--cmdline", cmdline]
            if let initrd = guest.initrd { args += ["--initrd", initrd] }
            return (vmmPath, args)
        case .qemu:
            guard let qemuPath else { return nil }
            var args = ["-M", "microvm,accel=kvm", "-m", "\(memoryMiB)", "-smp", "\(cpus)", "-nodefaults", "-no-user-config",
                        "-display", "none", "-serial", "stdio", "-no-reboot", "-kernel", guest.kernel, "-append", cmdline]
            if let cpu = guest.qemuCpu { args += ["-cpu", cpu] }
            if let initrd = guest.initrd { args += ["-initrd", initrd] }
            return (qemuPath, args)
        }
    }

    /// One boot: until the guest ends by itself (probe) or the marker shows (then stopped).
    public func bootSample(_ vmm: Vmm) throws -> Sample? {
        guard let (path, args) = arguments(vmm, cmdline: guest.cmdline) else { return nil }
        let process = try MeasuredProcess(path, args)
        let marker = process.waitFor(guest.marker, timeout: timeout)
        let outcome = guest.isProbe ? process.finish(timeout: timeout) : process.finish(signal: SIGTERM, timeout: timeout)
        var bootTimer: Double?
        if let line = outcome.first(containing: "Guest-boot-time = ") {
            // "Guest-boot-time = 20718 us 20 ms, ..." (Firecracker's format)
            let after = line.text.components(separatedBy: "Guest-boot-time = ").last ?? ""
            if let us = Double(after.split(separator: " ").first ?? "") { bootTimer = us / 1000 }
        }
        return Sample(vmm: vmm, markerMs: marker.map { $0.seconds * 1000 }, bootTimerMs: bootTimer,
                      cpuMs: outcome.cpuSeconds * 1000, exitStatus: outcome.exitStatus)
    }

    /// Memory once the guest idles after boot.
    public func memorySample(_ vmm: Vmm) throws -> ProcessMemory? {
        guard let (path, args) = arguments(vmm, cmdline: guest.idleCmdline) else { return nil }
        let process = try MeasuredProcess(path, args)
        defer { _ = process.finish(signal: SIGKILL, timeout: 10) }
        guard process.waitFor(guest.idleMarker, timeout: timeout) != nil else { return nil }
        usleep(300_000)
        return process.memory(guestMiB: memoryMiB)
    }
}
