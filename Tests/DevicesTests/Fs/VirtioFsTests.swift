import Foundation
import Glibc
import Testing
import TestSupport
import VMM
@testable import Devices

/// virtio-fs with the real backend: the driver's requests are served by virtiofsd from
/// guest memory (a shared memfd) and never pass through the device model, and a daemon
/// killed mid-use costs the guest EIO, not a hang, and the VMM nothing.
@Suite(.serialized) struct VirtioFsTests {
    static let requestQueues = 1

    func makeDriver(_ daemon: Virtiofsd, tag: String = "kataShared") throws -> (VirtioTestDriver, VirtioFs) {
        let loop = try EventLoop()
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: VirtioTestDriver.defaultMemorySize), backing: .sharedMemfd)
        let fs = try VirtioFs(tag: tag, socketPath: daemon.socketPath, requestQueues: Self.requestQueues, queueSize: 128,
                              loop: loop, logger: quietLogger())
        return (try VirtioTestDriver(device: fs, memory: memory, loop: loop), fs)
    }

    /// The driver at DRIVER_OK and a FUSE session past INIT, with the file "f" ("abc") shared.
    func startSession(_ daemon: Virtiofsd) throws -> (VirtioTestDriver, VirtioFs, FuseTestClient) {
        try Data("abc".utf8).write(to: URL(fileURLWithPath: daemon.source + "/f"))
        let (driver, fs) = try makeDriver(daemon)
        try driver.initialize()
        var client = FuseTestClient(driver: driver)
        _ = try client.initialize()
        return (driver, fs, client)
    }

    @Test func theConfigSpaceHoldsTheTagAndTheRequestQueues() throws {
        let daemon = try Virtiofsd()
        let (driver, _) = try makeDriver(daemon, tag: "kataShared")
        #expect(try driver.probe().deviceId == 26)
        let config = driver.readConfig(0, width: 40)
        #expect(Array(config[0..<10]) == Array("kataShared".utf8))
        #expect(config[10..<36].allSatisfy { $0 == 0 })
        #expect(config[36..<40] == [1, 0, 0, 0])
    }

    @Test func theBackendServesRequestsBothWays() throws {
        let daemon = try Virtiofsd()
        try "hello from the host\n".write(toFile: daemon.source + "/hello.txt", atomically: false, encoding: .utf8)
        let (driver, fs) = try makeDriver(daemon)
        try driver.initialize()
        #expect(fs.queuesServedByBackend)
        var client = FuseTestClient(driver: driver)
        let version = try client.initialize()
        #expect(version.major == 7)

        let hello = try client.lookup("hello.txt")
        #expect(hello.error == 0)
        #expect(hello.size == 20)
        let handle = try client.open(hello.node, flags: UInt32(O_RDWR))
        #expect(try client.read(hello.node, handle: handle, offset: 0, size: 4096) == Array("hello from the host\n".utf8))

        // A guest write reaches the host's file, and the host's new file the guest, at once.
        #expect(try client.write(hello.node, handle: handle, offset: 0, Array("HELLO".utf8)) == 5)
        #expect(try String(contentsOfFile: daemon.source + "/hello.txt", encoding: .utf8) == "HELLO from the host\n")
        #expect(try client.lookup("later.txt").error == -ENOENT)
        try String(repeating: "x", count: 100_000).write(toFile: daemon.source + "/later.txt", atomically: false, encoding: .utf8)
        let later = try client.lookup("later.txt")
        #expect(later.error == 0 && later.size == 100_000)
        let laterHandle = try client.open(later.node, flags: UInt32(O_RDONLY))
        #expect(try client.read(later.node, handle: laterHandle, offset: 99_990, size: 64 << 10) == Array(repeating: UInt8(ascii: "x"), count: 10))

        // The backend interrupted through the device's irqfd; the VMM answered nothing.
        #expect(driver.interrupts() > 0)
        #expect(driver.handleInterrupt() & 1 != 0)
        #expect(fs.failedRequests == 0)
    }

    /// Linux resets the device on unbind (and kexec): the backend gives the queues back,
    /// and the next DRIVER_OK hands it fresh rings.
    @Test func aResetDeviceIsServedAgainOnNewRings() throws {
        let daemon = try Virtiofsd()
        var (driver, fs, first) = try startSession(daemon)
        #expect(try first.lookup("f").size == 3)
        driver.reset()
        #expect(driver.status == 0)
        try driver.initialize()
        var second = FuseTestClient(driver: driver)
        _ = try second.initialize()
        #expect(try second.lookup("f").size == 3)
        #expect(!fs.backendGone)
    }

    @Test func aKilledDaemonLeavesTheGuestWithEIOAndTheVmmRunning() throws {
        let daemon = try Virtiofsd()
        var (driver, fs, client) = try startSession(daemon)
        #expect(try client.lookup("f").error == 0)

        daemon.kill()
        // The event loop sees the hang-up; from then on the VMM answers the queues.
        let deadline = Date().addingTimeInterval(10)
        while fs.queuesServedByBackend && Date() < deadline { _ = driver.loop?.runOnce(timeoutMs: 10) }
        #expect(fs.backendGone)
        #expect(!fs.queuesServedByBackend)
        #expect(try client.lookup("f").error == -EIO)
        #expect(try client.lookup("g").error == -EIO)
        #expect(fs.failedRequests == 2)

        // A driver that resets and starts again finds the device needing reset, not a hang.
        driver.reset()
        #expect(throws: VirtioTestDriverError.self) { try driver.initialize() }
        #expect(driver.status & VirtioStatus.deviceNeedsReset != 0)
    }
}
