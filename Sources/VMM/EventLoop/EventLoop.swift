import CLinux
import Glibc
import Synchronization
import LinuxSupport

/// The VMM's device I/O thread: one epoll set, one handler per file descriptor. Device
/// backends (the serial port's stdin, taps, vsock sockets, ioeventfds, AIO completions)
/// register here, so that vCPU threads only ever do the short synchronous part of an exit.
public final class EventLoop: @unchecked Sendable {  // handlers behind a Mutex, `stopping` atomic; `thread` only by the owner's start()/stop()
    public typealias Handler = @Sendable (_ events: UInt32) -> Void

    public static let readable = EPOLLIN.rawValue
    public static let writable = EPOLLOUT.rawValue
    public static let hangup = EPOLLHUP.rawValue | EPOLLRDHUP.rawValue
    public static let error = EPOLLERR.rawValue

    private let epoll: OwnedFileDescriptor
    private let wakeup: EventFd
    private let handlers = Mutex<[Int32: Handler]>([:])
    private let stopping = Atomic<Bool>(false)
    private var thread: PosixThread?

    public init() throws {
        let raw = epoll_create1(Int32(EPOLL_CLOEXEC))
        if raw < 0 { throw SystemError("epoll_create1") }
        epoll = OwnedFileDescriptor(raw)
        wakeup = try EventFd()
        try add(fd: wakeup.fd.rawValue, events: Self.readable) { [wakeup] _ in wakeup.consume() }
    }

    /// Watches `fd` for `events` (EPOLLIN/EPOLLOUT...); `handler` runs on the loop thread.
    public func add(fd: Int32, events: UInt32, handler: @escaping Handler) throws {
        handlers.withLock { $0[fd] = handler }
        var event = epoll_event(events: events, data: epoll_data_t(fd: fd))
        if epoll_ctl(epoll.rawValue, EPOLL_CTL_ADD, fd, &event) < 0 {
            let err = errno
            handlers.withLock { _ = $0.removeValue(forKey: fd) }
            throw SystemError("epoll_ctl ADD fd \(fd)", errno: err)
        }
    }

    /// Changes the events watched on `fd` (0 pauses it without forgetting the handler).
    public func modify(fd: Int32, events: UInt32) throws {
        var event = epoll_event(events: events, data: epoll_data_t(fd: fd))
        try check("epoll_ctl MOD fd \(fd)", epoll_ctl(epoll.rawValue, EPOLL_CTL_MOD, fd, &event))
    }

    public func remove(fd: Int32) {
        _ = epoll_ctl(epoll.rawValue, EPOLL_CTL_DEL, fd, nil)
        handlers.withLock { _ = $0.removeValue(forKey: fd) }
    }

    /// Runs one round: waits up to `timeoutMs` (-1 forever) and dispatches ready fds.
    /// Returns the number of events dispatched.
    @discardableResult
    public func runOnce(timeoutMs: Int32) -> Int {
        var events = (epoll_event(), epoll_event(), epoll_event(), epoll_event(),
                      epoll_event(), epoll_event(), epoll_event(), epoll_event())
        let count = withUnsafeMutableBytes(of: &events) { raw -> Int32 in
            let base = raw.baseAddress!.assumingMemoryBound(to: epoll_event.self)
            return epoll_wait(epoll.rawValue, base, 8, timeoutMs)
        }
        if count <= 0 { return 0 }
        withUnsafeBytes(of: &events) { raw in
            let base = raw.baseAddress!.assumingMemoryBound(to: epoll_event.self)
            for i in 0..<Int(count) {
                let fd = base[i].data.fd
                let mask = base[i].events
                if let handler = handlers.withLock({ $0[fd] }) { handler(mask) }
            }
        }
        return Int(count)
    }

    /// Starts the loop on its own thread.
    public func start() throws {
        do {
            thread = try PosixThread.start { [self] in threadMain() }
        } catch {
            throw SystemError("pthread_create (event loop)", errno: error.errno)
        }
    }

    private func threadMain() {
        while !stopping.load(ordering: .acquiring) {
            runOnce(timeoutMs: -1)
        }
    }

    /// Stops the loop thread and waits for it.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        wakeup.signal()
        thread?.join()
        thread = nil
    }
}
