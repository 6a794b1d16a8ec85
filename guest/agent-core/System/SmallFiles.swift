#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import LinuxSupport

/// Reads a small text file (procfs, sysfs, cgroupfs), at most `limit` bytes; nil when it
/// cannot be opened.
func readSmallFile(_ path: String, limit: Int = 64 * 1024) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while bytes.count < limit {
        let n = read(fd, &chunk, min(chunk.count, limit - bytes.count))
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Writes `text` to an existing file (cgroup knobs), with errno in the error.
func writeSmallFile(_ path: String, _ text: String) throws(AgentError) {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { throw .errno("open \(path)") }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    guard write(fd, bytes, bytes.count) == bytes.count else { throw .errno("write \(text) to \(path)") }
}

/// mkdir -p, failing as the agent's RPCs do.
func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(AgentError) {
    do { try LinuxSupport.makeDirectories(path, mode: mode) } catch { throw AgentError(error) }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
