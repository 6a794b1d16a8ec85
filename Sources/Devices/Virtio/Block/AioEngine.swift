import CLinux
import Glibc
import VMM
import LinuxSupport

/// Linux AIO (libaio) for one disk: reads and writes go to the kernel with io_submit and
/// complete through an eventfd the event loop watches. Each request keeps its iovecs alive
/// until its completion is reaped.
public final class AioEngine: @unchecked Sendable {  // `pending`/`nextId` and the io context are used only by its VirtioBlock, under the transport's lock
    /// A submitted request and what to do when it completes.
    public struct Pending {
        public var head: UInt16
        public var expected: Int
        public var statusAddress: UInt64
        public var usedLength: UInt32
        /// A read: the kernel wrote the guest buffers as it completed.
        public var isRead: Bool
        let iocb: UnsafeMutablePointer<iocb>
        let iovecs: UnsafeMutablePointer<iovec>
        let iovecCount: Int

        /// The guest buffers, as host memory (valid until the request is released).
        public var buffers: [UnsafeMutableRawBufferPointer] {
            (0..<iovecCount).map { UnsafeMutableRawBufferPointer(start: iovecs[$0].iov_base, count: iovecs[$0].iov_len) }
        }
    }

    public let completion: EventFd
    private var context: io_context_t?
    private var pending: [UInt64: Pending] = [:]
    private var nextId: UInt64 = 1
    public var inFlight: Int { pending.count }

    public init(depth: Int) throws {
        completion = try EventFd()
        var ctx: io_context_t?
        let rc = io_setup(Int32(depth), &ctx)
        if rc < 0 { throw SystemError("io_setup", errno: -rc) }
        context = ctx
    }

    deinit {
        drain()
        if let context { io_destroy(context) }
        for (_, request) in pending { release(request) }
    }

    /// Submits one vectored read or write; false if the kernel refused it.
    public func submit(fd: Int32, pieces: [UnsafeMutableRawBufferPointer], offset: UInt64, write: Bool,
                       head: UInt16, statusAddress: UInt64, usedLength: UInt32) -> Bool {
        guard let context else { return false }
        let iov = UnsafeMutablePointer<iovec>.allocate(capacity: max(pieces.count, 1))
        for (i, piece) in pieces.enumerated() {
            iov[i] = iovec(iov_base: piece.baseAddress, iov_len: piece.count)
        }
        let cb = UnsafeMutablePointer<iocb>.allocate(capacity: 1)
        cb.initialize(to: iocb())
        if write {
            io_prep_pwritev(cb, fd, iov, Int32(pieces.count), Int64(offset))
        } else {
            io_prep_preadv(cb, fd, iov, Int32(pieces.count), Int64(offset))
        }
        io_set_eventfd(cb, completion.fd.rawValue)
        let id = nextId
        nextId += 1
        cb.pointee.data = UnsafeMutableRawPointer(bitPattern: UInt(id))
        let request = Pending(head: head, expected: pieces.reduce(0) { $0 + $1.count }, statusAddress: statusAddress,
                              usedLength: usedLength, isRead: !write, iocb: cb, iovecs: iov, iovecCount: pieces.count)
        var list: UnsafeMutablePointer<iocb>? = cb
        let rc = withUnsafeMutablePointer(to: &list) { io_submit(context, 1, $0) }
        if rc != 1 {
            release(request)
            return false
        }
        pending[id] = request
        return true
    }

    /// Reaps finished requests without waiting; `body` gets each with its success.
    public func reap(_ body: (Pending, Bool) -> Void) {
        completion.consume()
        reap(minimum: 0, body)
    }

    /// Waits for every in-flight request (device reset, shutdown).
    public func drain(_ body: (Pending, Bool) -> Void = { _, _ in }) {
        while !pending.isEmpty { reap(minimum: 1, body) }
    }

    private func reap(minimum: Int, _ body: (Pending, Bool) -> Void) {
        guard let context else { return }
        var events = [io_event](repeating: io_event(), count: 64)
        while true {
            var timeout = timespec(tv_sec: minimum > 0 ? 5 : 0, tv_nsec: 0)
            let n = io_getevents(context, minimum, events.count, &events, &timeout)
            if n == -EINTR { continue }
            if n <= 0 { return }
            for event in events[0..<Int(n)] {
                let id = UInt64(UInt(bitPattern: event.data))
                guard let request = pending.removeValue(forKey: id) else { continue }
                let result = Int64(bitPattern: UInt64(event.res))
                body(request, result == Int64(request.expected))
                release(request)
            }
            if Int(n) < events.count { return }
        }
    }

    private func release(_ request: Pending) {
        request.iocb.deallocate()
        request.iovecs.deallocate()
    }
}
