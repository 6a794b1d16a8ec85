import Foundation
import Glibc
import Logging
import LinuxSupport

/// The tie between `create` and the sandbox monitor it starts: a pipe whose write end only
/// `create` holds (close-on-exec, so no hook or shim inherits it). `create` records the
/// monitor in the state right after spawning it and confirms (one byte) once the container
/// is created; if the pipe closes before that — `create` failed, or was killed at any
/// moment, even before the monitor was recorded — the monitor exits, and the VM, which
/// lives in the monitor's process, with it. A killed `create` never leaves a sandbox running.
public final class CreatorLink {
    /// The monitor's fd for the read end (3 is the readiness pipe).
    public static let monitorFd: Int32 = 4
    static let confirmation: UInt8 = 0x63  // "c"

    /// The read end, for the monitor's spawn only.
    let readEnd: Int32
    private var writeEnd: Int32

    init() throws {
        (readEnd, writeEnd) = try FileDescriptors.pipe()
    }

    /// The monitor has been spawned: the read end is its now.
    func monitorStarted() { Glibc.close(readEnd) }

    /// The container is created: the monitor is on its own from here.
    func confirm() throws {
        guard writeEnd >= 0 else { return }
        defer { close() }
        try FileDescriptors.writeAll(writeEnd, [Self.confirmation])
    }

    /// Unconfirmed: the monitor exits.
    func close() {
        guard writeEnd >= 0 else { return }
        Glibc.close(writeEnd)
        writeEnd = -1
    }

    deinit { close() }

    /// The monitor's side: a thread that waits for the confirmation and calls `abandoned`
    /// if the pipe closes first. A monitor started without the pipe (fd not open) is
    /// treated as abandoned too: it was not started by `create`.
    public static func watch(_ fd: Int32 = monitorFd, logger: Logger, abandoned: @escaping @Sendable () -> Void) {
        let thread = Thread {
            var byte: UInt8 = 0
            var count: Int
            repeat { count = read(fd, &byte, 1) } while count < 0 && errno == EINTR
            Glibc.close(fd)
            guard count == 1 && byte == confirmation else {
                logger.error("the create that started this sandbox monitor went away before confirming it; exiting")
                abandoned()
                return
            }
        }
        thread.start()
    }
}
