#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A POSIX thread for one long-running job: a vCPU, the event loop, a response reader, a
/// signal waiter, one agent connection. The VMM and the agent run such jobs on threads of
/// their own, never on Swift's cooperative pool, because they block in the kernel.
public struct PosixThread: @unchecked Sendable {  // pthread_t is an opaque integer handle
    public let handle: pthread_t

    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// Starts `body`. A `detached` thread is never joined (it ends with the process or on its
    /// own); `stackSize` in bytes, nil for the default (8 MiB).
    @discardableResult
    public static func start(detached: Bool = false, stackSize: Int? = nil, _ body: @escaping () -> Void) throws(SystemError) -> PosixThread {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        if detached { pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED)) }
        if let stackSize { pthread_attr_setstacksize(&attributes, stackSize) }
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, &attributes, { raw in
            Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, box)
        if result != 0 {
            Unmanaged<Body>.fromOpaque(box).release()
            throw SystemError("pthread_create", errno: result)
        }
        return PosixThread(handle: thread)
    }

    /// Waits for a joinable thread to end.
    public func join() {
        pthread_join(handle, nil)
    }
}
