import Glibc
import LinuxSupport

/// Copies a file's data extents only (lseek SEEK_DATA/SEEK_HOLE; zero blocks inside them
/// are skipped too), so that a mostly empty disk image stays sparse in its copy: a cached
/// rootfs image costs a container its used blocks, not its size.
public enum SparseFileCopy {
    // Linux's whence values (glibc declares them only under _GNU_SOURCE).
    static let seekData: Int32 = 3
    static let seekHole: Int32 = 4

    /// Creates `destination` (mode 0600, must not exist) as a copy of `source`.
    public static func copy(from source: String, to destination: String) throws {
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw SystemError("create \(destination)") }
        defer { close(output) }
        do {
            try copy(from: source, into: output, named: destination)
        } catch {
            unlink(destination)
            throw error
        }
    }

    /// Copies `source` into the empty file open at `output` (`destination` names it in errors).
    public static func copy(from source: String, into output: Int32, named destination: String) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw SystemError("open \(source)") }
        defer { close(input) }
        var info = stat()
        guard fstat(input, &info) == 0 else { throw SystemError("fstat \(source)") }
        let size = info.st_size
        guard ftruncate(output, size) == 0 else { throw SystemError("ftruncate \(destination)") }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: off_t = 0
        while offset < size {
            let dataStart = lseek(input, offset, seekData)
            if dataStart < 0 {
                if errno == ENXIO { break }  // only a hole remains
                throw SystemError("lseek SEEK_DATA in \(source)")
            }
            var dataEnd = lseek(input, dataStart, seekHole)
            if dataEnd < 0 { throw SystemError("lseek SEEK_HOLE in \(source)") }
            dataEnd = min(dataEnd, size)
            var position = dataStart
            while position < dataEnd {
                let count = Int(min(off_t(buffer.count), dataEnd - position))
                let got = buffer.withUnsafeMutableBytes { pread(input, $0.baseAddress, count, position) }
                if got < 0 {
                    if errno == EINTR { continue }
                    throw SystemError("read \(source)")
                }
                if got == 0 { throw RuntimeError("\(source) shrank while being copied") }
                // Zero blocks stay holes in the copy.
                if buffer[0..<got].contains(where: { $0 != 0 }) {
                    try buffer.withUnsafeBytes { bytes in
                        var written = 0
                        while written < got {
                            let result = pwrite(output, bytes.baseAddress! + written, got - written, position + off_t(written))
                            if result < 0 {
                                if errno == EINTR { continue }
                                throw SystemError("write \(destination)")
                            }
                            written += result
                        }
                    }
                }
                position += off_t(got)
            }
            offset = dataEnd
        }
    }
}
