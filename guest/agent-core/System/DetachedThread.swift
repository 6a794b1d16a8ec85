#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import LinuxSupport

/// Starts `body` on a new detached pthread (the agent serves each connection and each
/// request on its own thread; requests such as ReadStdout or WaitProcess block).
/// A 512 KiB stack: the agent runs many of them, and none recurses deeply.
enum DetachedThread {
    static func start(_ body: @escaping () -> Void) throws(AgentError) {
        do { try PosixThread.start(detached: true, stackSize: 512 * 1024, body) } catch { throw AgentError(error) }
    }
}
