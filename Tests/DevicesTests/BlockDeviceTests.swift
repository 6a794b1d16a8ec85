import Foundation
import Glibc
import TestSupport
import Testing
@testable import Devices
@testable import VMM

/// virtio-blk driven as Linux's virtio_blk driver does, over real image files.
@Suite struct BlockDeviceTests {
    static let sector = 512

    final class Disk {
        let url: URL
        let block: VirtioBlock
        let driver: VirtioTestDriver

        init(sectors: Int = 2048, readOnly: Bool = false, engine: BlockEngine = .sync, fill: UInt8 = 0,
             direct: Bool = false, directory: URL = Fixtures.scratch) throws {
            url = directory.appendingPathComponent("blk-\(UUID().uuidString).img")
            try Data(repeating: fill, count: sectors * BlockDeviceTests.sector).write(to: url)
            let backend = try BlockBackend(path: url.path, readOnly: readOnly, direct: direct)
            block = try VirtioBlock(backend: backend, serial: "serial-\(sectors)", engine: engine, logger: quietLogger())
            driver = try VirtioTestDriver(device: block)
            try driver.initialize()
        }

        deinit { try? FileManager.default.removeItem(at: url) }

        var contents: [UInt8] { (try? [UInt8](Data(contentsOf: url))) ?? [] }

        /// Header buffer (type, reserved, sector) in guest memory.
        func header(_ type: UInt32, sector: UInt64) -> UInt64 {
            let at = driver.allocate(16)
            try! driver.memory.store(type, at: at)
            try! driver.memory.store(UInt32(0), at: at + 4)
            try! driver.memory.store(sector, at: at + 8)
            return at
        }

        /// Submits a chain, kicks, and waits (AIO completes asynchronously) for its used entry.
        func submit(_ buffers: [VirtioTestBuffer], indirect: Bool = false) throws -> (len: UInt32, used: Int) {
            let head = indirect ? try driver.addIndirect(buffers) : try driver.add(buffers)
            driver.notify()
            var used = driver.getUsed()
            for _ in 0..<2000 where used.isEmpty {
                usleep(1000)
                driver.runDevice()
                used = driver.getUsed()
            }
            #expect(used.count == 1)
            #expect(used.first?.id == UInt32(head))
            return (used.first?.len ?? 0, used.count)
        }
    }

    func status(_ disk: Disk, _ at: UInt64) -> UInt8 { disk.driver.bytes(at, 1)[0] }

    @Test func featuresAndConfigSpace() throws {
        let disk = try Disk(sectors: 4096)
        let f = disk.block.offeredFeatures
        #expect(f & VirtioFeature.version1 != 0)
        #expect(f & VirtioBlock.featureFlush != 0 && f & VirtioBlock.featureDiscard != 0 && f & VirtioBlock.featureWriteZeroes != 0)
        #expect(f & VirtioBlock.featureReadOnly == 0)
        let config = ByteReader(disk.driver.readConfig(0, width: 60))
        #expect(config.u64(0) == 4096)  // capacity in sectors
        #expect(config.u32(12) == 254)  // seg_max
        #expect(config.u32(20) == 512)  // blk_size
        #expect(config.u32(40) == 1 && config.u32(52) == 1)  // one discard / write-zeroes segment
        let ro = try Disk(sectors: 8, readOnly: true)
        #expect(ro.block.offeredFeatures & VirtioBlock.featureReadOnly != 0)
        #expect(ro.block.offeredFeatures & VirtioBlock.featureDiscard == 0)
    }

    @Test(arguments: [BlockEngine.sync, .aio])
    func writeThenReadWithEveryLayout(engine: BlockEngine) throws {
        let disk = try Disk(engine: engine)
        let d = disk.driver
        let payload = (0..<(3 * Self.sector)).map { UInt8(truncatingIfNeeded: $0 * 31 + 7) }

        // Write: header, data split over three descriptors, status.
        let data = d.allocate(payload.count)
        try d.memory.write(payload, at: data)
        let st = d.allocate(1)
        let w = try disk.submit([.readable(disk.header(1, sector: 10), 16),
                                 .readable(data, 100), .readable(data + 100, 900), .readable(data + 1000, 536),
                                 .writable(st, 1)])
        #expect(w.len == 1 && status(disk, st) == 0)
        #expect(Array(disk.contents[10 * Self.sector..<13 * Self.sector]) == payload)

        // Read back with header and data in ONE readable+writable split, through an indirect table.
        let into = d.allocate(payload.count + 1)
        let r = try disk.submit([.readable(disk.header(0, sector: 10), 16), .writable(into, UInt32(payload.count + 1))],
                                indirect: true)
        #expect(r.len == UInt32(payload.count + 1))
        #expect(d.bytes(into, payload.count) == payload)
        #expect(d.bytes(into + UInt64(payload.count), 1) == [0])  // the status shares the last buffer

        // Header and first data bytes sharing one descriptor (Linux >= 6.x may merge).
        let merged = d.allocate(16 + Self.sector)
        try d.memory.write(try d.memory.read(at: disk.header(1, sector: 20), length: 16) + [UInt8](repeating: 0xAB, count: Self.sector), at: merged)
        let st2 = d.allocate(1)
        #expect(try disk.submit([.readable(merged, UInt32(16 + Self.sector)), .writable(st2, 1)]).len == 1)
        #expect(status(disk, st2) == 0)
        #expect(disk.contents[20 * Self.sector..<21 * Self.sector].allSatisfy { $0 == 0xAB })
        #expect(disk.block.writtenBytes == UInt64(4 * Self.sector))
    }

    /// With track_dirty_pages, an asynchronous read's pages are marked when its data lands,
    /// not only when the device took the buffers: a dirty-page read between the two (a
    /// diff snapshot's) must not lose them.
    @Test func asynchronousReadsMarkTheirPagesWhenTheyLand() throws {
        let url = Fixtures.scratch.appendingPathComponent("blk-dirty-\(UUID().uuidString).img")
        try Data(repeating: 0x5A, count: 64 * Self.sector).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let block = try VirtioBlock(backend: try BlockBackend(path: url.path, readOnly: false, direct: false), serial: "dirty",
                                    engine: .aio, logger: quietLogger())
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: VirtioTestDriver.defaultMemorySize), trackDirtyPages: true)
        // No event loop: completions are reaped only when the test says, after its dirty-page read.
        let d = try VirtioTestDriver(device: block, memory: memory, eventLoop: false)
        try d.initialize()
        let header = d.allocate(16)
        try d.memory.store(UInt32(0), at: header)  // VIRTIO_BLK_T_IN
        try d.memory.store(UInt64(0), at: header + 8)
        let into = d.allocate(8192, align: 4096)
        let status = d.allocate(1)
        let dirty = try #require(memory.dirtyPages)
        try d.add([.readable(header, 16), .writable(into, 8192), .writable(status, 1)])
        d.notify()
        // The read is at the kernel: a dirty-page read now clears what submission marked.
        _ = dirty.take(region: 0)
        var used = d.getUsed()
        for _ in 0..<2000 where used.isEmpty {
            usleep(1000)
            try d.transport.withDeviceLocked { _ in try block.processBackendEvents() }
            used = d.getUsed()
        }
        // Taken before the test reads the data (its reads go through slice and would mark).
        let bits = dirty.take(region: 0)
        #expect(used.count == 1 && d.bytes(into, 8192).allSatisfy { $0 == 0x5A })
        for page in [Int(into / 4096), Int(into / 4096) + 1] {
            #expect(bits[page / 64] & (1 << UInt64(page % 64)) != 0, "page \(page) of the read is not marked")
        }
    }

    /// direct=on: O_DIRECT I/O from page-aligned guest buffers, with both engines.
    @Test(arguments: [BlockEngine.sync, .aio])
    func directIo(engine: BlockEngine) throws {
        // tmpfs has no O_DIRECT; the package's own .build folder is on a disk filesystem.
        let directory = Fixtures.packageRoot.appendingPathComponent(".build")
        let disk: Disk
        do {
            disk = try Disk(engine: engine, direct: true, directory: directory)
        } catch let error as BlockBackend.OpenError {
            try Fixtures.missing("O_DIRECT (\(error))")
        }
        let d = disk.driver
        let data = d.allocate(8192, align: 4096)
        try d.memory.write((0..<8192).map { UInt8(truncatingIfNeeded: $0 ^ 0x5C) }, at: data)
        let st = d.allocate(1)
        #expect(try disk.submit([.readable(disk.header(1, sector: 16), 16), .readable(data, 8192), .writable(st, 1)]).len == 1)
        #expect(status(disk, st) == 0)
        let back = d.allocate(8192, align: 4096)
        #expect(try disk.submit([.readable(disk.header(0, sector: 16), 16), .writable(back, 8192), .writable(st, 1)]).len == 8193)
        #expect(status(disk, st) == 0)
        #expect(d.bytes(back, 8192) == d.bytes(data, 8192))
        #expect(Array(disk.contents[16 * Self.sector..<16 * Self.sector + 8192]) == d.bytes(data, 8192))
    }

    @Test func flushAndGetId() throws {
        let disk = try Disk()
        let st = disk.driver.allocate(1)
        #expect(try disk.submit([.readable(disk.header(4, sector: 0), 16), .writable(st, 1)]).len == 1)
        #expect(status(disk, st) == 0)
        let id = disk.driver.allocate(21)
        #expect(try disk.submit([.readable(disk.header(8, sector: 0), 16), .writable(id, 20), .writable(id + 20, 1)]).len == 21)
        #expect(disk.driver.bytes(id, 20) == Array("serial-2048".utf8) + [UInt8](repeating: 0, count: 9))
        #expect(status(disk, id + 20) == 0)
    }

    @Test func discardAndWriteZeroes() throws {
        let disk = try Disk(fill: 0x5A)
        for type: UInt32 in [13, 11] {  // write zeroes, then discard
            let segment = disk.driver.allocate(16)
            let start: UInt64 = type == 13 ? 8 : 64
            try disk.driver.memory.store(start, at: segment)
            try disk.driver.memory.store(UInt32(16), at: segment + 8)  // sectors
            try disk.driver.memory.store(UInt32(0), at: segment + 12)
            let st = disk.driver.allocate(1)
            #expect(try disk.submit([.readable(disk.header(type, sector: 0), 16), .readable(segment, 16), .writable(st, 1)]).len == 1)
            #expect(status(disk, st) == 0)
            let range = Int(start) * Self.sector..<(Int(start) + 16) * Self.sector
            #expect(disk.contents[range].allSatisfy { $0 == 0 })
        }
        #expect(disk.contents.count == 2048 * Self.sector)  // size kept
        #expect(disk.contents[0..<8 * Self.sector].allSatisfy { $0 == 0x5A })
    }

    @Test func badRequestsGetAStatusNeverACrash() throws {
        let disk = try Disk(sectors: 64, fill: 0x11)
        let d = disk.driver
        func request(_ buffers: [VirtioTestBuffer]) throws -> UInt8 {
            let st = buffers.last!.address + UInt64(buffers.last!.length) - 1
            _ = try disk.submit(buffers)
            return status(disk, st)
        }
        let data = d.allocate(4096)
        // unknown type
        #expect(try request([.readable(disk.header(99, sector: 0), 16), .writable(d.allocate(1), 1)]) == 2)
        // read past the end, and straddling it
        #expect(try request([.readable(disk.header(0, sector: 64), 16), .writable(data, 512), .writable(d.allocate(1), 1)]) == 1)
        #expect(try request([.readable(disk.header(0, sector: 63), 16), .writable(data, 1024), .writable(d.allocate(1), 1)]) == 1)
        #expect(try request([.readable(disk.header(0, sector: UInt64.max / 256), 16), .writable(data, 512), .writable(d.allocate(1), 1)]) == 1)
        // write that is not a whole number of sectors
        #expect(try request([.readable(disk.header(1, sector: 0), 16), .readable(data, 100), .writable(d.allocate(1), 1)]) == 1)
        // header shorter than 16 bytes
        #expect(try request([.readable(disk.header(0, sector: 0), 8), .writable(d.allocate(1), 1)]) == 1)
        // discard with two segments (one is the maximum)
        #expect(try request([.readable(disk.header(11, sector: 0), 16), .readable(data, 32), .writable(d.allocate(1), 1)]) == 2)
        // no writable byte at all: nowhere to put a status; returned with length 0
        let noStatus = try disk.submit([.readable(disk.header(1, sector: 0), 16), .readable(data, 512)])
        #expect(noStatus.len == 0)
        #expect(disk.contents.allSatisfy { $0 == 0x11 })
        // and the device still works
        #expect(try request([.readable(disk.header(0, sector: 1), 16), .writable(data, 512), .writable(d.allocate(1), 1)]) == 0)
        #expect(disk.block.failedRequests == 8)
    }

    @Test func readOnlyDiskRefusesWrites() throws {
        let disk = try Disk(sectors: 16, readOnly: true, fill: 0x22)
        let data = disk.driver.allocate(512)
        for type: UInt32 in [1, 11, 13] {
            let st = disk.driver.allocate(1)
            let payload: [VirtioTestBuffer] = type == 1 ? [.readable(data, 512)] : [.readable(data, 16)]
            _ = try disk.submit([.readable(disk.header(type, sector: 0), 16)] + payload + [.writable(st, 1)])
            #expect(status(disk, st) == 1)
        }
        #expect(disk.contents.allSatisfy { $0 == 0x22 })
        #expect(throws: BlockBackend.OpenError.self) {
            try BlockBackend(path: "/nonexistent/disk", readOnly: true, direct: false)
        }
    }

    /// Throughput of the device model against the same I/O on the host file: 4 KiB random
    /// reads and 1 MiB sequential writes. Prints the figures and their ratio (no timing
    /// assertion: these machines are noisy).
    @Test func throughputBesideTheHostFile() throws {
        let sectors = 32 << 11  // 32 MiB
        let disk = try Disk(sectors: sectors, fill: 0x33)
        let d = disk.driver
        let fd = open(disk.url.path, O_RDWR)
        defer { close(fd) }
        var generator = SystemRandomNumberGenerator()
        let offsets = (0..<2000).map { _ in UInt64.random(in: 0..<UInt64(sectors / 8), using: &generator) * 8 }
        let buffer = d.allocate(1 << 20)
        let st = d.allocate(1)
        let clock = ContinuousClock()

        let modelReads = clock.measure {
            for sector in offsets {
                _ = try? disk.submit([.readable(disk.header(0, sector: sector), 16), .writable(buffer, 4096), .writable(st, 1)])
            }
        }
        var scratch = [UInt8](repeating: 0, count: 1 << 20)
        let hostReads = clock.measure {
            for sector in offsets { _ = pread(fd, &scratch, 4096, off_t(sector * 512)) }
        }
        let modelWrites = clock.measure {
            for i in 0..<32 {
                _ = try? disk.submit([.readable(disk.header(1, sector: UInt64(i) * 2048), 16), .readable(buffer, 1 << 20), .writable(st, 1)])
            }
        }
        let hostWrites = clock.measure {
            for i in 0..<32 { _ = pwrite(fd, &scratch, 1 << 20, off_t(i) << 20) }
        }
        func mibps(_ bytes: Int, _ duration: Duration) -> Double {
            Double(bytes) / 1_048_576 / (Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
        }
        let r = (mibps(2000 * 4096, modelReads), mibps(2000 * 4096, hostReads))
        let w = (mibps(32 << 20, modelWrites), mibps(32 << 20, hostWrites))
        print(String(format: "virtio-blk throughput: 4K random read %.1f MiB/s (host %.1f, ratio %.2f); 1M sequential write %.1f MiB/s (host %.1f, ratio %.2f)",
                     r.0, r.1, r.0 / r.1, w.0, w.1, w.0 / w.1))
        #expect(r.0 > 0 && w.0 > 0)
        #expect(status(disk, st) == 0)
    }
}
