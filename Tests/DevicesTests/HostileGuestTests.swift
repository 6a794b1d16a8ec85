import Foundation
import Glibc
import Logging
import TestSupport
import Testing
@testable import Devices
@testable import VMM

/// Keeps every line logged through it, so a test can count them.
struct RecordingLogHandler: LogHandler {
    let lines: Recorder<String>
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) { lines.record("\(event.level): \(event.message)") }
}

/// What a hostile driver does to a device, and what must hold afterwards: the VMM does
/// not trap, stall or grow; the device it broke reports DEVICE_NEEDS_RESET; nothing else
/// is affected.
@Suite(.serialized) struct HostileGuestTests {
    /// Ring addresses near 2^64: any unchecked offset from them overflows (and traps).
    static let top = UInt64.max & ~0xFFF

    /// Negotiates every offered feature, then hands queue 0 rings at the top of the address
    /// space, not ready; the other queues are set up as Linux does; DRIVER_OK.
    func bringUpWithRxLeftUnready(_ d: VirtioTestDriver) throws {
        try d.negotiateEveryFeature()
        d.configureQueue(0, size: 256, desc: Self.top, avail: Self.top + 0x800, used: Self.top + 0xC00, ready: false)
        for index in d.device.queueMaxSizes.indices.dropFirst() { try d.setUpQueue(index) }
        d.driverOk()
        #expect(d.status & VirtioStatus.deviceNeedsReset == 0)
    }

    @Test func vsockRxQueueNotReadyAtTheTopOfMemoryIsNeverTouched() throws {
        let loop = try EventLoop()
        let vsock = try VirtioVsock(guestCid: 3, udsPath: VsockHostSocket.uniquePath(), loop: loop, logger: quietLogger())
        defer { vsock.close() }
        let d = try VirtioTestDriver(device: vsock, eventLoop: false)
        try bringUpWithRxLeftUnready(d)
        // A REQUEST to a host port nobody listens on: the device owes the guest an RST on rx.
        let request = VsockPacketHeader(srcCid: 3, dstCid: 2, srcPort: 5000, dstPort: 9999, op: .request, bufAlloc: 1 << 16)
        let packet = d.allocate(VsockPacketHeader.size)
        try d.memory.write(request.bytes, at: packet)
        try d.add([.readable(packet, UInt32(VsockPacketHeader.size))], queue: 1)
        d.notify(1)
        for _ in 0..<10 {
            loop.runOnce(timeoutMs: 5)
            d.runDevice()
        }
        #expect(d.getUsed(1).count == 1, "the tx queue is served")
        #expect(d.status & VirtioStatus.deviceNeedsReset == 0)
        // Once the driver sets the device up properly, the RST it was owed arrives.
        try d.initialize()
        try d.add([.writable(d.allocate(4096), 4096)], queue: 0)
        d.notify(0)
        for _ in 0..<10 where d.usedIdx(0) == 0 {
            loop.runOnce(timeoutMs: 5)
            d.runDevice()
        }
        #expect(d.status & VirtioStatus.deviceNeedsReset == 0)
    }

    @Test func netRxQueueNotReadyAtTheTopOfMemoryIsNeverTouched() throws {
        guard NetDeviceTests.available else { try Fixtures.missing("root, /dev/net/tun and ip") }
        let ns = try NetDeviceTests.Namespace(tapName: "khn0")
        let loop = try EventLoop()
        let net = try VirtioNet(tap: ns.tap, mac: NetDeviceTests.guestMac, loop: loop, logger: quietLogger())
        let d = try VirtioTestDriver(device: net, eventLoop: false)
        try bringUpWithRxLeftUnready(d)
        // The first frame the host sends to the tap.
        #expect(ns.sendFrame(NetDeviceTests.frame(payload: Array(repeating: 7, count: 100), destination: NetDeviceTests.guestMac)))
        for _ in 0..<20 {
            loop.runOnce(timeoutMs: 10)
            d.runDevice()
        }
        #expect(net.counters.rxFrames == 0)
        #expect(d.status & VirtioStatus.deviceNeedsReset == 0)
    }

    @Test func hugeIndirectTablesAreRefusedWithoutWalkingThem() throws {
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 96 << 20))
        let rng = try VirtioRng(logger: quietLogger())
        let d = try VirtioTestDriver(device: rng, memory: memory)
        try d.initialize()
        // One 64 MiB table of 4 Mi linked, writable descriptors, named by 4 heads.
        let table: UInt64 = 16 << 20
        let entries = (64 << 20) / 16
        let buffer = d.allocate(16)
        let view = try memory.slice(at: table, length: entries * 16)
        for i in 0..<entries {
            view.storeBytes(of: buffer.littleEndian, toByteOffset: 16 * i, as: UInt64.self)
            view.storeBytes(of: UInt32(16).littleEndian, toByteOffset: 16 * i + 8, as: UInt32.self)
            view.storeBytes(of: (VirtqDesc.write | VirtqDesc.next).littleEndian, toByteOffset: 16 * i + 12, as: UInt16.self)
            view.storeBytes(of: UInt16(truncatingIfNeeded: i + 1).littleEndian, toByteOffset: 16 * i + 14, as: UInt16.self)
        }
        var heads: [UInt16] = []
        for index in UInt16(0)..<4 {
            d.writeDescriptor(table: d.queue(0).desc, index: index, address: table, length: UInt32(entries * 16),
                              flags: VirtqDesc.indirect, next: 0)
            d.publish(head: index)
            heads.append(index)
        }
        let rssBefore = Self.residentKiB()
        d.notify()
        let growth = Self.residentKiB() - rssBefore
        #expect(d.getUsed().map { [$0.id, $0.len] } == heads.map { [UInt32($0), 0] })
        #expect(rng.bytesServed == 0)
        #expect(growth < 8 << 10, "the VMM grew by \(growth) KiB")
        #expect(d.status & VirtioStatus.deviceNeedsReset == 0)
        // The queue still works.
        let good = d.allocate(64)
        try d.add([.writable(good, 64)], at: [4])
        d.notify()
        #expect(d.getUsed().map(\.len) == [64])
    }

    @Test func aBrokenRingSeenOnATapFrameFailsOnlyThatDevice() throws {
        guard NetDeviceTests.available else { try Fixtures.missing("root, /dev/net/tun and ip") }
        let ns = try NetDeviceTests.Namespace(tapName: "khr0")
        let loop = try EventLoop()
        let lines = Recorder<String>()
        let logger = Logger(label: "hostile") { _ in RecordingLogHandler(lines: lines) }
        let net = try VirtioNet(tap: ns.tap, mac: NetDeviceTests.guestMac, loop: loop, logger: logger)
        let d = try VirtioTestDriver(device: net, eventLoop: false, logger: logger)
        try d.initialize()
        let other = try VirtioTestDriver(device: try VirtioRng(logger: quietLogger()))
        try other.initialize()
        // The driver runs its available index more than a queue ahead, then a frame comes.
        d.setAvailIndex(300, queue: 0)
        let frame = NetDeviceTests.frame(payload: Array(repeating: 9, count: 60), destination: NetDeviceTests.guestMac)
        for _ in 0..<3 { #expect(ns.sendFrame(frame)) }
        for _ in 0..<20 {
            loop.runOnce(timeoutMs: 10)
            d.runDevice()
        }
        #expect(d.status & VirtioStatus.deviceNeedsReset != 0)
        #expect(d.handleInterrupt() & VirtioInterrupt.configChange != 0)
        let failures = lines.all.filter { $0.contains("needs a reset") }
        #expect(failures.count == 1, "\(lines.all)")
        #expect(failures.first?.contains("available index 300") == true, "\(failures)")
        // Disarmed: more frames and doorbells do nothing, and log nothing.
        for _ in 0..<3 { #expect(ns.sendFrame(frame)) }
        d.write32(VirtioMmio.queueNotify, 1)
        for _ in 0..<10 {
            loop.runOnce(timeoutMs: 10)
            d.runDevice()
        }
        #expect(lines.all.filter { $0.contains("needs a reset") }.count == 1)
        #expect(net.counters.rxFrames == 0)
        // Another device is untouched.
        try other.add([.writable(other.allocate(32), 32)])
        other.notify()
        #expect(other.getUsed().map(\.len) == [32])
        // The driver's reset brings the device back.
        try d.initialize()
        #expect(d.status & VirtioStatus.deviceNeedsReset == 0)
        let rx = NetDeviceTests.Receiver()
        try rx.post(d, count: 8, size: 2048)
        #expect(ns.sendFrame(frame))
        for _ in 0..<50 where rx.frame(where: { Array($0.prefix(6)) == NetDeviceTests.guestMac }) == nil {
            loop.runOnce(timeoutMs: 10)
            d.runDevice()
            rx.collect(d)
        }
        #expect(rx.frame(where: { Array($0.prefix(6)) == NetDeviceTests.guestMac }) != nil)
    }

    @Test func mergeableRxGatheringIsCapped() throws {
        guard NetDeviceTests.available else { try Fixtures.missing("root, /dev/net/tun and ip") }
        let ns = try NetDeviceTests.Namespace(tapName: "khm0")
        let loop = try EventLoop()
        let net = try VirtioNet(tap: ns.tap, mac: NetDeviceTests.guestMac, loop: loop, logger: quietLogger())
        let d = try VirtioTestDriver(device: net, eventLoop: false)
        try d.initialize()
        // 200 buffers of 16 bytes: a 1,500-byte frame would need 95 of them.
        let tiny = NetDeviceTests.Receiver()
        try tiny.post(d, count: 200, size: 16)
        let big = NetDeviceTests.frame(payload: Array(repeating: 3, count: 1500), destination: NetDeviceTests.guestMac)
        #expect(ns.sendFrame(big))
        for _ in 0..<20 where net.counters.rxDropped == 0 {
            loop.runOnce(timeoutMs: 10)
            d.runDevice()
        }
        #expect(net.counters.rxDropped == 1 && net.counters.rxFrames == 0)
        let used = d.getUsed(0)
        #expect(used.count == VirtioNet.maxMergedBuffers && used.allSatisfy { $0.len == 0 })
        #expect(d.status & VirtioStatus.deviceNeedsReset == 0)
    }

    static func residentKiB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
}
