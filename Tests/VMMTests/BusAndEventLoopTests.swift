import Glibc
import Synchronization
import Testing
@testable import VMM
import LinuxSupport

final class RecordingDevice: BusDevice, Sendable {
    let log = Mutex<[(String, UInt64, [UInt8])]>([])
    func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        for i in data.indices { data[i] = UInt8(truncatingIfNeeded: offset) &+ UInt8(i) }
        log.withLock { $0.append(("r", offset, Array(data))) }
    }
    func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        log.withLock { $0.append(("w", offset, Array(data))) }
    }
}

@Suite struct BusTests {
    @Test func resolvesRangesAndRejectsOverlaps() throws {
        let bus = Bus()
        let a = RecordingDevice(), b = RecordingDevice()
        try bus.insert(a, base: 0x3F8, length: 8)
        try bus.insert(b, base: 0x60, length: 5)
        #expect(throws: BusError.self) { try bus.insert(a, base: 0x3FF, length: 2) }
        #expect(throws: BusError.self) { try bus.insert(a, base: 0x3F0, length: 9) }
        #expect(throws: BusError.emptyRange) { try bus.insert(a, base: 0x10, length: 0) }
        #expect(bus.resolve(0x3FC).map { $0.offset } == 4)
        #expect(bus.resolve(0x400) == nil)
        #expect(bus.resolve(0x5F) == nil)
        #expect(bus.resolve(0x64)?.device === b)
        var word: UInt16 = 0
        withUnsafeMutableBytes(of: &word) { #expect(bus.read(0x3F9, $0)) }
        #expect(word == 0x0201)
        withUnsafeMutableBytes(of: &word) { #expect(!bus.read(0x1234, $0)) }
        #expect(word == 0xFFFF)  // unclaimed reads float high
        #expect(![UInt8(1)].withUnsafeBytes { bus.write(0x1234, $0) })
        #expect([UInt8(7)].withUnsafeBytes { bus.write(0x60, $0) })
        #expect(b.log.withLock { $0.last?.0 == "w" && $0.last?.2 == [7] })
    }
}

@Suite struct EventLoopTests {
    @Test func dispatchesReadyDescriptorsOnItsThread() throws {
        let loop = try EventLoop()
        let fd = try EventFd()
        let seen = Atomic<Int>(0)
        try loop.add(fd: fd.fd.rawValue, events: EventLoop.readable) { _ in
            if let value = fd.consume() { seen.add(Int(value), ordering: .relaxed) }
        }
        try loop.start()
        fd.signal(3)
        for _ in 0..<200 where seen.load(ordering: .relaxed) < 3 { usleep(5_000) }
        #expect(seen.load(ordering: .relaxed) == 3)
        try loop.modify(fd: fd.fd.rawValue, events: 0)  // paused: no dispatch
        fd.signal(1)
        usleep(50_000)
        #expect(seen.load(ordering: .relaxed) == 3)
        try loop.modify(fd: fd.fd.rawValue, events: EventLoop.readable)
        for _ in 0..<200 where seen.load(ordering: .relaxed) < 4 { usleep(5_000) }
        #expect(seen.load(ordering: .relaxed) == 4)
        loop.remove(fd: fd.fd.rawValue)
        loop.stop()
    }

    @Test func addingABadDescriptorFails() throws {
        let loop = try EventLoop()
        #expect(throws: SystemError.self) { try loop.add(fd: 999_999, events: EventLoop.readable) { _ in } }
    }
}
