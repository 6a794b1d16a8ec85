import Devices
import FuzzSupport
import Glibc
import VMM

// A hostile vhost-user backend: the input is every byte it sends back, whatever the
// requests. The frontend goes through what a virtio-fs device does (introduction,
// features, memory table, one queue started and stopped) and must end each step with a
// VhostUserError or a result, never a trap, a hang or an unbounded allocation.

let socketPath = ScratchDirectory.file("backend.sock")
let listener: Int32 = {
    unlink(socketPath)
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (index, byte) in socketPath.utf8.enumerated() { raw[index] = byte }
    }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    precondition(fd >= 0 && bound == 0 && listen(fd, 4) == 0, "backend socket: \(String(cString: strerror(errno)))")
    return fd
}()
let memory = try! GuestMemory(ranges: [(guestAddress: 0, size: 1 << 20)], backing: .sharedMemfd)
/// The kick, call and err fds the frontend passes: any fd will do for a backend that
/// only answers.
let eventFd: Int32 = {
    var fds: [Int32] = [0, 0]
    precondition(pipe(&fds) == 0)
    return fds[0]
}()

/// The backend's side of one connection: accepts, sends `replies`, closes its sending
/// side and reads until the frontend hangs up.
final class Backend: @unchecked Sendable {  // read by its one thread after the start
    let replies: [UInt8]
    init(_ replies: [UInt8]) { self.replies = replies }

    func serve() {
        // A frontend that failed before connecting must not leave this thread waiting.
        var ready = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&ready, 1, 2000) == 1 else { return }
        let fd = accept(listener, nil, nil)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var offset = 0
        while offset < replies.count {
            let sent = replies[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { break }
            offset += sent
        }
        shutdown(fd, Int32(SHUT_WR))
        var sink = [UInt8](repeating: 0, count: 4096)
        while sink.withUnsafeMutableBytes({ recv(fd, $0.baseAddress, $0.count, 0) }) > 0 {}
    }
}

@_cdecl("fuzz_vhost_user_main")
public func fuzzMain(_ argc: Int32, _ argv: FuzzArguments) -> Int32 { runFuzzer(argc, argv, fuzzOneInput) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let backend = Backend(FuzzInput(data, size).bytes)
    var thread = pthread_t()
    let box = Unmanaged.passRetained(backend)
    guard pthread_create(&thread, nil, { raw in
        Unmanaged<Backend>.fromOpaque(raw!).takeRetainedValue().serve()
        return nil
    }, box.toOpaque()) == 0 else {
        box.release()
        return 0
    }
    do {
        let frontend = try VhostUserFrontend(connectingTo: socketPath, timeoutMs: 2000)
        try frontend.setFeatures(VirtioFeature.version1)
        try frontend.setMemoryTable(memory)
        try frontend.startQueue(0, size: 256, descriptors: 0x1000, available: 0x2000, used: 0x3000,
                                kick: eventFd, call: eventFd, err: eventFd)
        _ = try frontend.stopQueue(0)
    } catch {
        _ = error.description  // every error says what went wrong
    }
    pthread_join(thread, nil)
    return 0
}
