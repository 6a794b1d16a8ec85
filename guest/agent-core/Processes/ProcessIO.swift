#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CAgentSpawn

/// The stdio of one container process: a pty (terminal processes: stdin, stdout and
/// stderr all on the terminal, opened by the child inside the container and read and
/// written here through the controller side) or three pipes. The agent keeps its ends; the child's ends are closed once it is spawned so
/// that end of file reaches the readers when the process (and its children) exit.
final class ProcessIO: @unchecked Sendable {  // shared descriptors under `lock`; the child ends and console socket are used by the spawning thread before the process is published
    enum Stream { case stdout, stderr }

    /// Largest chunk one ReadStdout/ReadStderr returns (the response must fit a frame).
    static let maxReadChunk = 1 << 20

    let terminal: Bool
    private let lock = Monitor()
    private var stdinWriter: Int32 = -1
    private var stdoutReader: Int32 = -1
    private var stderrReader: Int32 = -1
    private var controller: Int32 = -1
    private(set) var childStdin: Int32 = -1
    private(set) var childStdout: Int32 = -1
    private(set) var childStderr: Int32 = -1

    /// The agent's end of the socket on which a terminal process's child sends the pty
    /// controller it opened in the container's own devpts (so that ttyname works inside).
    private var consoleSocket: Int32 = -1
    private(set) var childConsoleSocket: Int32 = -1

    init(terminal: Bool) throws(AgentError) {
        self.terminal = terminal
        if terminal {
            var fds: [Int32] = [-1, -1]
            guard agent_socketpair_cloexec(&fds) == 0 else { throw .errno("socketpair") }
            consoleSocket = fds[0]
            childConsoleSocket = fds[1]
        } else {
            var fds: [Int32] = [-1, -1]
            guard agent_pipe_cloexec(&fds) == 0 else { throw .errno("pipe") }
            childStdin = fds[0]; stdinWriter = fds[1]
            guard agent_pipe_cloexec(&fds) == 0 else { closeAll(); throw .errno("pipe") }
            stdoutReader = fds[0]; childStdout = fds[1]
            guard agent_pipe_cloexec(&fds) == 0 else { closeAll(); throw .errno("pipe") }
            stderrReader = fds[0]; childStderr = fds[1]
            // Bigger pipes: fewer wake-ups per MiB of output (best effort, 1 MiB).
            _ = agent_set_pipe_size(stdoutReader, 1 << 20)
            _ = agent_set_pipe_size(stderrReader, 1 << 20)
        }
    }

    deinit { closeAll() }

    /// Closes the child's ends in the agent (after the spawn).
    func closeChildEnds() {
        lock.locked {
            if childStdin >= 0 { close(childStdin) }
            if childStdout >= 0 && childStdout != childStdin { close(childStdout) }
            if childStderr >= 0 && childStderr != childStdin && childStderr != childStdout { close(childStderr) }
            if childConsoleSocket >= 0 { close(childConsoleSocket) }
            childStdin = -1; childStdout = -1; childStderr = -1; childConsoleSocket = -1
        }
    }

    /// Receives the pty controller from a terminal process's child (after the spawn,
    /// before it execs). Fails if the child ended without sending one.
    func receiveTerminal() throws(AgentError) {
        guard terminal else { return }
        let fd = agent_receive_fd(consoleSocket)
        close(consoleSocket)
        consoleSocket = -1
        guard fd >= 0 else {
            throw errno == 0 ? .system(errno: EPIPE, "the process ended before sending its terminal") : .errno("receive the terminal")
        }
        lock.locked { controller = fd }
    }

    /// Blocks until data (at most `limit` bytes) is available; empty at end of stream.
    func read(_ stream: Stream, limit: Int) throws(AgentError) -> [UInt8] {
        let fd: Int32 = lock.locked {
            if terminal { return stream == .stdout ? controller : -1 }
            return stream == .stdout ? stdoutReader : stderrReader
        }
        guard fd >= 0 else { return [] }  // a terminal has no separate stderr
        let count = max(1, min(limit == 0 ? ProcessIO.maxReadChunk : limit, ProcessIO.maxReadChunk))
        var buffer = [UInt8](repeating: 0, count: count)
        while true {
            let n = Glibc.read(fd, &buffer, count)
            if n >= 0 {
                buffer.removeSubrange(n...)
                return buffer
            }
            if errno == EINTR { continue }
            if errno == EIO && terminal { return [] }  // the terminal's last holder closed it
            throw .errno("read \(stream)")
        }
    }

    /// Writes all of `bytes` to the process's stdin (blocking while the pipe is full).
    func writeStdin(_ bytes: [UInt8]) throws(AgentError) -> Int {
        let fd: Int32 = lock.locked { terminal ? controller : stdinWriter }
        guard fd >= 0 else { throw .precondition("stdin is closed") }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .errno("write stdin")
            }
            offset += n
        }
        return offset
    }

    /// End of input: closes the pipe, or sends the terminal's EOF character (^D).
    func closeStdin() throws(AgentError) {
        if terminal {
            _ = try writeStdin([4])
            return
        }
        lock.locked {
            if stdinWriter >= 0 { close(stdinWriter) }
            stdinWriter = -1
        }
    }

    func resize(rows: UInt32, columns: UInt32) throws(AgentError) {
        guard terminal else { throw .precondition("the process has no terminal") }
        let controller = lock.locked { self.controller }
        guard agent_set_winsize(controller, UInt16(clamping: rows), UInt16(clamping: columns)) == 0 else {
            throw .errno("TIOCSWINSZ")
        }
    }

    private func closeAll() {
        closeChildEnds()
        for fd in [stdinWriter, stdoutReader, stderrReader, controller, consoleSocket] where fd >= 0 { close(fd) }
        stdinWriter = -1; stdoutReader = -1; stderrReader = -1; controller = -1; consoleSocket = -1
    }
}
