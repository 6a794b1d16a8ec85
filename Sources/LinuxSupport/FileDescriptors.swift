#if canImport(Glibc)
import Glibc
private let systemPipe = Glibc.pipe
private let systemWrite = Glibc.write
private let systemRead = Glibc.read
#elseif canImport(Musl)
import Musl
private let systemPipe = Musl.pipe
private let systemWrite = Musl.write
private let systemRead = Musl.read
#endif

/// Pipes and small fd helpers, all O_CLOEXEC.
public enum FileDescriptors {
    public static func pipe() throws(SystemError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard systemPipe(&fds) == 0 else { throw SystemError("pipe") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return (fds[0], fds[1])
    }

    public static func writeAll(_ fd: Int32, _ data: [UInt8]) throws(SystemError) {
        var offset = 0
        while offset < data.count {
            let written = data[offset...].withUnsafeBytes { systemWrite(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw SystemError("write")
            }
            offset += written
        }
    }

    /// A whole file's text, read to EOF: for /proc files, which Foundation's readers cut
    /// off after their first page. nil if it cannot be opened or read.
    public static func readText(_ path: String, limit: Int = 16 << 20) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard let bytes = try? readAll(fd, limit: limit) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads until EOF, at most `limit` bytes (the rest is drained and dropped).
    public static func readAll(_ fd: Int32, limit: Int = 1 << 20) throws(SystemError) -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError("read")
            }
            if count == 0 { return result }
            if result.count < limit { result += buffer[0..<min(count, limit - result.count)] }
        }
    }
}
