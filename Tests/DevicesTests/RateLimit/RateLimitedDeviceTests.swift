import Foundation
import Glibc
import TestSupport
import Testing
@testable import Devices
@testable import VMM

/// Rate limiters inside the devices, driven as Linux drives them, with the transport on a
/// real event loop: what a limiter refuses stays on the ring (no request is lost or
/// answered early), the guest's further kicks change nothing, and the limiter's timer
/// resumes the queue. Only lower bounds on time are checked: a slow machine can only make
/// a throttled run longer, so they cannot flake, but a limiter that did not hold back
/// fails them.
@Suite struct RateLimitedDeviceTests {
    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Runs the event loop (waiting for timers) until `done`, or 10 s.
    func pump(_ d: VirtioTestDriver, until done: () -> Bool) {
        let deadline = ContinuousClock.now + .seconds(10)
        while !done() && ContinuousClock.now < deadline { d.loop?.runOnce(timeoutMs: 50) }
    }

    @Test func entropyOpsAreHeldBackUntilTheTimer() throws {
        // 3 requests per 200 ms, no burst: 8 requests take at least (8 - 3) / 15 s.
        let config = RateLimiterConfig(ops: TokenBucketConfig(size: 3, refillTimeMs: 200))
        let rng = try VirtioRng(rateLimiter: config, logger: quietLogger())
        let d = try VirtioTestDriver(device: rng)
        try d.initialize()
        let start = ContinuousClock.now
        for _ in 0..<8 { try d.add([.writable(d.allocate(16), 16)]) }
        d.notify()
        var used = d.getUsed()
        #expect(used.count == 3 && used.allSatisfy { $0.len == 16 })
        #expect(rng.rateLimiter.isBlocked && rng.rateLimiter.counters.throttled == 1)
        // The guest kicking again while throttled gets nothing more; the refusal is counted.
        d.notify()
        used += d.getUsed()
        #expect(used.count == 3 && rng.rateLimiter.counters.throttled == 2)
        pump(d) { used += d.getUsed(); return used.count == 8 }
        let elapsed = Self.seconds(ContinuousClock.now - start)
        #expect(used.count == 8 && used.allSatisfy { $0.len == 16 })
        #expect(elapsed >= 0.3, "8 requests at 15/s after a bucket of 3 took \(elapsed) s")
        #expect(rng.bytesServed == 8 * 16)
        #expect(rng.rateLimiter.counters.timerEvents >= 1)
        print(String(format: "virtio-rng, 3 ops per 200 ms: 8 requests in %.3f s", elapsed))
    }

    @Test func blockBandwidthChargesDataBytesAndAnOversizedReadRunsIntoDebt() throws {
        let disk = try BlockDeviceTests.Disk(sectors: 512)
        // 16 KiB per 100 ms. A 64 KiB read passes at once and leaves 48 KiB of debt: the
        // next read (even of one sector) waits at least 300 ms.
        disk.block.rateLimiter.reconfigure(RateLimiterConfig(bandwidth: TokenBucketConfig(size: 16 << 10, refillTimeMs: 100)))
        let d = disk.driver
        func read(_ bytes: Int) throws {
            try d.add([.readable(disk.header(0, sector: 0), 16), .writable(d.allocate(bytes), UInt32(bytes)),
                       .writable(d.allocate(1), 1)])
        }
        let start = ContinuousClock.now
        try read(64 << 10)
        try read(512)
        d.notify()
        var used = d.getUsed()
        #expect(used.map(\.len) == [UInt32(64 << 10) + 1])
        pump(d) { used += d.getUsed(); return used.count == 2 }
        let elapsed = Self.seconds(ContinuousClock.now - start)
        #expect(used.map(\.len) == [UInt32(64 << 10) + 1, 513])
        #expect(elapsed >= 0.29, "the read after 48 KiB of debt at 160 KiB/s came after \(elapsed) s")
        #expect(disk.block.readBytes == UInt64(64 << 10) + 512)
        // A flush moves no data: a bandwidth limiter lets it through even in debt.
        try read(64 << 10)
        d.notify()
        used = d.getUsed()
        try d.add([.readable(disk.header(4, sector: 0), 16), .writable(d.allocate(1), 1)])
        d.notify()
        used += d.getUsed()
        #expect(used.map(\.len) == [UInt32(64 << 10) + 1, 1])
        #expect(disk.block.rateLimiter.counters.throttled == 1 && !disk.block.rateLimiter.isBlocked)
    }

    /// A request the device refuses (here a read that is not a whole number of sectors)
    /// takes nothing from the buckets: a guest cannot run its disk into debt with lengths
    /// it never transfers.
    @Test func refusedRequestsAreNotCharged() throws {
        let disk = try BlockDeviceTests.Disk(sectors: 64)
        disk.block.rateLimiter.reconfigure(RateLimiterConfig(bandwidth: TokenBucketConfig(size: 1024, refillTimeMs: 600_000),
                                                             ops: TokenBucketConfig(size: 3, refillTimeMs: 600_000)))
        let d = disk.driver
        let status = d.allocate(1)
        try d.add([.readable(disk.header(0, sector: 0), 16), .writable(d.allocate(700), 700), .writable(status, 1)])
        try d.add([.readable(disk.header(0, sector: 0), 16), .writable(d.allocate(512), 512), .writable(d.allocate(1), 1)])
        try d.add([.readable(disk.header(0, sector: 0), 16), .writable(d.allocate(512), 512), .writable(d.allocate(1), 1)])
        d.notify()
        #expect(d.bytes(status, 1) == [VirtioBlock.Status.ioError.rawValue])
        // 1024 bytes and 3 ops: both good reads fit only if the refused one took nothing.
        #expect(d.getUsed().map(\.len) == [1, 513, 513])
        #expect(disk.block.rateLimiter.counters.throttled == 0)
    }

    @Test func liftingTheLimitLiveReleasesAThrottledQueueAtOnce() throws {
        let disk = try BlockDeviceTests.Disk(sectors: 64)
        // One request per ten minutes: the second waits until the limit is lifted.
        disk.block.rateLimiter.reconfigure(RateLimiterConfig(ops: TokenBucketConfig(size: 1, refillTimeMs: 600_000)))
        let d = disk.driver
        for _ in 0..<2 {
            try d.add([.readable(disk.header(0, sector: 1), 16), .writable(d.allocate(512), 512), .writable(d.allocate(1), 1)])
        }
        d.notify()
        var used = d.getUsed()
        #expect(used.count == 1)
        d.loop?.runOnce(timeoutMs: 100)
        used += d.getUsed()
        #expect(used.count == 1)
        let lifted = ContinuousClock.now
        disk.block.rateLimiter.reconfigure(.unlimited)
        pump(d) { used += d.getUsed(); return used.count == 2 }
        #expect(used.count == 2, "lifted \(Self.seconds(ContinuousClock.now - lifted)) s ago")
        #expect(disk.block.requests == 2 && disk.block.failedRequests == 0)
    }

    @Test func aResetWhileThrottledLeavesNothingBehind() throws {
        let rng = try VirtioRng(rateLimiter: RateLimiterConfig(ops: TokenBucketConfig(size: 1, refillTimeMs: 100)),
                                logger: quietLogger())
        let d = try VirtioTestDriver(device: rng)
        try d.initialize()
        for _ in 0..<3 { try d.add([.writable(d.allocate(8), 8)]) }
        d.notify()
        #expect(d.getUsed().count == 1)
        // The driver resets while the limiter waits: its timer fires on a device with no
        // rings, which serves nothing; a fresh initialisation works as before.
        d.reset()
        d.loop?.runOnce(timeoutMs: 300)
        #expect(!rng.rateLimiter.isBlocked)
        try d.initialize()
        try d.add([.writable(d.allocate(8), 8)])
        d.notify()
        var used = d.getUsed()
        pump(d) { used += d.getUsed(); return !used.isEmpty }
        #expect(used.map(\.len) == [8])
    }
}
