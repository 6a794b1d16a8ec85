import AgentProtocol
import Foundation
import Glibc
import LinuxSupport

/// Stands in on the host for one container process (the init process or an exec): the
/// pid callers see, wait on and reap. It holds the stdio the caller passed (or the
/// terminal's slave side), relays it to and from the agent (WriteStdin/ReadStdout/
/// ReadStderr), and exits with the process's exit status (128+N for a signal), so that a
/// containerd shim or conmon that reaps it learns the container's exit exactly as with
/// runc. For the init process it first waits on the start fifo (`kata-runtime start`
/// opens it) and records the exit in the container's state.
public struct ProcessShim {
    public var store: StateStore
    public var containerId: String
    /// Empty for the container's init process.
    public var execId: String
    public var terminal: Bool
    public var startFifo: String?

    public init(store: StateStore, containerId: String, execId: String, terminal: Bool, startFifo: String?) {
        self.store = store
        self.containerId = containerId
        self.execId = execId
        self.terminal = terminal
        self.startFifo = startFifo
    }

    /// Relays until the process exits; returns its status (255 when the sandbox went away).
    public func run() -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        // Orphaned (the state removed without delete): nobody will ever start, wait or
        // delete this process; end it.
        let store = self.store, id = containerId
        StateWatcher.start(every: 2, isOrphaned: { !store.exists(id) }) { exit(255) }
        if let startFifo {
            // Blocks until `start` opens the fifo for writing.
            let fd = open(startFifo, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return 255 }
            var byte: UInt8 = 0
            let count = read(fd, &byte, 1)
            close(fd)
            guard count == 1 else { return 255 }  // the writer went away without starting
        }
        let record: ContainerRecord
        let session: AgentSession
        do {
            record = try store.load(containerId)
            session = try AgentSession(endpoint: record.agentEndpoint, timeout: nil)
        } catch {
            log("\(error)")
            return 255
        }
        let cid = containerId, eid = execId
        let outputDone = DispatchGroup()
        pump(into: STDOUT_FILENO, group: outputDone) { length in
            var request = Grpc_ReadStreamRequest()
            request.containerID = cid
            request.execID = eid
            request.len = length
            return try session.call("ReadStdout") { client in try client.readStdout(request).data }
        }
        if !terminal {
            pump(into: STDERR_FILENO, group: outputDone) { length in
                var request = Grpc_ReadStreamRequest()
                request.containerID = cid
                request.execID = eid
                request.len = length
                return try session.call("ReadStderr") { client in try client.readStderr(request).data }
            }
        }
        let stdinThread = Thread { [terminal] in
            var buffer = [UInt8](repeating: 0, count: 32768)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                var request = Grpc_WriteStreamRequest()
                request.containerID = cid
                request.execID = eid
                request.data = Data(buffer[0..<count])
                guard (try? session.call("WriteStdin") { client in try client.writeStdin(request) }) != nil else { return }
            }
            guard !terminal else { return }
            var request = Grpc_CloseStdinRequest()
            request.containerID = cid
            request.execID = eid
            _ = try? session.call("CloseStdin") { client in try client.closeStdin(request) }
        }
        stdinThread.start()
        if terminal { followWindowSize(session: session) }

        var status: Int32 = 255
        do {
            var request = Grpc_WaitProcessRequest()
            request.containerID = cid
            request.execID = eid
            status = try session.call("WaitProcess") { client in try client.waitProcess(request).status }
        } catch {
            log("\(error)")
        }
        // The output streams end when the process's last writer closes them; bounded wait
        // in case a background child keeps them open.
        _ = outputDone.wait(timeout: .now() + .seconds(10))
        if execId.isEmpty { recordExit(status) }
        session.close()
        return status & 0xff
    }

    /// The guest's terminal follows the size of the host pty the caller holds: checked
    /// twice a second (the shim has no controlling terminal to get SIGWINCH from).
    func followWindowSize(session: AgentSession) {
        let cid = containerId, eid = execId
        let thread = Thread {
            var last: (UInt16, UInt16) = (0, 0)
            while true {
                var size = winsize()
                if ioctl(STDIN_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0, (size.ws_row, size.ws_col) != last {
                    var request = Grpc_TtyWinResizeRequest()
                    request.containerID = cid
                    request.execID = eid
                    request.row = UInt32(size.ws_row)
                    request.column = UInt32(size.ws_col)
                    if (try? session.call("TtyWinResize") { client in try client.ttyWinResize(request) }) != nil {
                        last = (size.ws_row, size.ws_col)
                    }
                }
                usleep(500_000)
            }
        }
        thread.start()
    }

    func pump(into fd: Int32, group: DispatchGroup, read: @escaping @Sendable (UInt32) throws -> Data) {
        group.enter()
        let thread = Thread {
            defer { group.leave() }
            var writable = true
            while true {
                guard let data = try? read(65536), !data.isEmpty else { return }
                guard writable else { continue }  // keep draining so the process never blocks
                let bytes = [UInt8](data)
                if (try? FileDescriptors.writeAll(fd, bytes)) == nil { writable = false }
            }
        }
        thread.start()
    }

    func recordExit(_ status: Int32) {
        _ = try? store.withLock(containerId) {
            var record = try store.load(containerId)
            record.exitStatus = status
            record.status = .stopped
            try store.save(record)
        }
    }

    func log(_ message: String) {
        // stderr is the container's; the shim's own problems go to the monitor log.
        guard let record = try? store.load(containerId) else { return }
        let fd = open(record.monitorLogPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        _ = try? FileDescriptors.writeAll(fd, Array("process shim \(containerId)/\(execId.isEmpty ? "init" : execId): \(message)\n".utf8))
        close(fd)
    }
}
