import Foundation
import Glibc
import LinuxSupport
import Synchronization
import Testing

@Suite struct LinuxSupportTests {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ls-\(UUID().uuidString.prefix(8))").path

    @Test func systemErrorsNameTheOperationAndTheErrno() {
        let error = SystemError("open /no/such/file", errno: ENOENT)
        #expect(error.description == "open /no/such/file: No such file or directory (errno 2)")
        #expect(error.code == .noSuchFileOrDirectory)
        #expect(throws: SystemError("close", errno: EBADF)) { try check("close", close(-1)) }
    }

    @Test func unixSocketPathsAreBoundedAndFree() throws {
        #expect(UnixSocketAddress("") == nil)
        #expect(UnixSocketAddress(String(repeating: "x", count: UnixSocketAddress.maxPathLength)) != nil)
        #expect(UnixSocketAddress(String(repeating: "x", count: UnixSocketAddress.maxPathLength + 1)) == nil)
        #expect(UnixSocketAddress("/tmp/a\u{0}b") == nil)
        #expect(UnixSocketAddress.maxPathLength == 107)
    }

    @Test func aBoundUnixAddressTakesAConnection() throws {
        try makeDirectories(scratch)
        let address = try #require(UnixSocketAddress(scratch + "/s"))
        let listener = OwnedFileDescriptor(socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0))
        try check("bind", address.bind(listener.rawValue))
        try check("listen", listen(listener.rawValue, 1))
        let client = OwnedFileDescriptor(socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0))
        try check("connect", address.connect(client.rawValue))
        let accepted = OwnedFileDescriptor(try check("accept", accept(listener.rawValue, nil, nil)))
        try Array("ping".utf8).withUnsafeBytes { try client.writeAll($0) }
        var buffer = [UInt8](repeating: 0, count: 4)
        #expect(read(accepted.rawValue, &buffer, 4) == 4)
        #expect(buffer == Array("ping".utf8))
        let unbound = OwnedFileDescriptor(socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0))
        #expect(UnixSocketAddress(scratch + "/nobody")!.connect(unbound.rawValue) == -1 && errno == ENOENT)
    }

    @Test func vsockAddressesCarryTheirPortAndCID() {
        VsockSocketAddress(port: 1024).withSocketAddress { pointer, length in
            #expect(length == 16)
            let bytes = UnsafeRawBufferPointer(start: pointer, count: Int(length))
            #expect(bytes.load(fromByteOffset: 0, as: UInt16.self) == 40)  // AF_VSOCK
            #expect(bytes.load(fromByteOffset: 4, as: UInt32.self) == 1024)
            #expect(bytes.load(fromByteOffset: 8, as: UInt32.self) == VsockSocketAddress.anyCID)
        }
    }

    @Test func threadsRunTheirBodyAndJoin() throws {
        let counter = Atomic<Int>(0)
        let threads = try (0..<4).map { _ in try PosixThread.start(stackSize: 128 << 10) { counter.add(1, ordering: .relaxed) } }
        for thread in threads { thread.join() }
        #expect(counter.load(ordering: .relaxed) == 4)
    }

    @Test func aBlockedSignalArrivesAtTheWaiter() throws {
        // SIGUSR2 is blocked in this thread only (pthread_sigmask), then sent to it.
        let waiter = SignalWaiter.block([SIGUSR2])
        pthread_kill(pthread_self(), SIGUSR2)
        #expect(waiter.next() == SIGUSR2)
    }

    @Test func makeDirectoriesMakesEveryParentAndAcceptsWhatExists() throws {
        try makeDirectories(scratch + "/a/b/c", mode: 0o700)
        try makeDirectories(scratch + "/a/b")
        var info = stat()
        #expect(stat(scratch + "/a/b/c", &info) == 0 && info.st_mode & 0o777 == 0o700)
        FileManager.default.createFile(atPath: scratch + "/file", contents: Data())
        #expect(throws: SystemError.self) { try makeDirectories(scratch + "/file/below") }
    }
}
