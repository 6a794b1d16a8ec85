import Glibc
import Synchronization
import VMM
import LinuxSupport

/// Where the serial console's output goes. A guest can print without end, so a console
/// log file is capped: past `maxBytes` the file is rotated once, to `<path>.1` (replacing
/// an older one), and a fresh file is started, so the newest output (a panic at the end)
/// is always kept and the disk holds at most twice the cap. A log file is created with
/// mode 0600: a console can show secrets. Output that is not a regular file (stdout, a
/// terminal, a FIFO) is not capped: nothing accumulates on disk there.
public final class ConsoleLog: Sendable {
    /// The default cap on a console log file: 4 MiB.
    public static let defaultMaxBytes = 4 << 20

    private struct Output {
        var fd: OwnedFileDescriptor
        var written: Int
    }

    /// The file to rotate; nil when the output is not a regular file or has no cap.
    public let rotatingPath: String?
    public let maxBytes: Int
    private let output: Mutex<Output>

    /// Output to an open descriptor (stdout), uncapped.
    public init(descriptor: OwnedFileDescriptor) {
        rotatingPath = nil
        maxBytes = 0
        output = Mutex(Output(fd: descriptor, written: 0))
    }

    /// Opens (creating, truncating) the log file at `path`; `maxBytes` 0: no cap.
    public init(path: String, maxBytes: Int = ConsoleLog.defaultMaxBytes) throws {
        let fd = try Self.open(path)
        var info = stat()
        let isRegular = fstat(fd.rawValue, &info) == 0 && info.st_mode & S_IFMT == S_IFREG
        // An existing file keeps its owner but not a wider mode than a new one gets.
        if isRegular { fchmod(fd.rawValue, 0o600) }
        rotatingPath = isRegular && maxBytes > 0 ? path : nil
        self.maxBytes = max(0, maxBytes)
        output = Mutex(Output(fd: fd, written: 0))
    }

    private static func open(_ path: String) throws -> OwnedFileDescriptor {
        try OwnedFileDescriptor(opening: path, flags: O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_NOCTTY, mode: 0o600)
    }

    /// Writes one byte (a UART transmits one at a time); a failed write drops it, as a
    /// disconnected line would.
    public func write(_ byte: UInt8) {
        output.withLock { out in
            if let rotatingPath, out.written >= maxBytes { rotate(&out, rotatingPath) }
            var byte = byte
            while Glibc.write(out.fd.rawValue, &byte, 1) < 0 && errno == EINTR {}
            out.written += 1
        }
    }

    /// Moves the full file to `<path>.1` and starts a new one; should either step fail
    /// (a read-only directory), the file is truncated instead, so the cap holds regardless.
    private func rotate(_ out: inout Output, _ path: String) {
        out.written = 0
        if rename(path, path + ".1") == 0, let fresh = try? Self.open(path) {
            out.fd = fresh
        } else {
            ftruncate(out.fd.rawValue, 0)
        }
    }
}
