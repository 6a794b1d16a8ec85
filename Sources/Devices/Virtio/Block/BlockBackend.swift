import CLinux
import Glibc
import VMM
import LinuxSupport

/// How a disk's reads and writes are issued.
public enum BlockEngine: String, Sendable, CaseIterable {
    /// preadv/pwritev on the event loop thread.
    case sync
    /// Linux AIO (io_submit), completions through an eventfd on the event loop.
    case aio
}

/// A disk image or block device opened for a virtio-blk device.
public final class BlockBackend: Sendable {
    public static let sectorSize: UInt64 = 512

    public enum OpenError: Error, CustomStringConvertible, Equatable {
        case cannotOpen(path: String, errno: Int32)
        case unsupportedType(path: String)
        case sizeNotSectorAligned(path: String, size: UInt64)
        case empty(path: String)

        public var description: String {
            switch self {
            case .cannotOpen(let path, let err): return "cannot open disk '\(path)': \(String(cString: strerror(err)))"
            case .unsupportedType(let path): return "disk '\(path)' is neither a regular file nor a block device"
            case .sizeNotSectorAligned(let path, let size): return "disk '\(path)' is \(size) bytes, not a multiple of 512"
            case .empty(let path): return "disk '\(path)' is empty"
            }
        }
    }

    public let path: String
    public let fd: OwnedFileDescriptor
    public let readOnly: Bool
    public let isBlockDevice: Bool
    public let size: UInt64
    public var sectors: UInt64 { size / Self.sectorSize }

    public init(path: String, readOnly: Bool, direct: Bool) throws {
        var flags = (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC
        if direct { flags |= clinux_o_direct() }
        // Opened non-blocking so that a FIFO cannot hang the caller; cleared once the type is known.
        let raw = open(path, flags | O_NONBLOCK)
        if raw < 0 { throw OpenError.cannotOpen(path: path, errno: errno) }
        fd = OwnedFileDescriptor(raw)
        self.path = path
        self.readOnly = readOnly
        var info = stat()
        guard fstat(raw, &info) == 0 else { throw OpenError.cannotOpen(path: path, errno: errno) }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            isBlockDevice = false
            size = UInt64(info.st_size)
        case S_IFBLK:
            isBlockDevice = true
            var bytes: UInt64 = 0
            guard clinux_blkgetsize64(raw, &bytes) == 0 else { throw OpenError.cannotOpen(path: path, errno: errno) }
            size = bytes
        default:
            throw OpenError.unsupportedType(path: path)
        }
        guard fcntl(raw, F_SETFL, flags & ~(O_RDONLY | O_RDWR | O_CLOEXEC)) == 0 else {
            throw OpenError.cannotOpen(path: path, errno: errno)
        }
        guard size > 0 else { throw OpenError.empty(path: path) }
        guard size % Self.sectorSize == 0 else { throw OpenError.sizeNotSectorAligned(path: path, size: size) }
    }

    /// Whether `count` bytes at `sector` lie inside the disk.
    public func contains(sector: UInt64, bytes count: UInt64) -> Bool {
        guard sector <= sectors else { return false }
        let offset = sector * Self.sectorSize
        return count <= size - offset
    }

    /// preadv/pwritev until done; returns false on any error or short transfer at EOF.
    public func transfer(_ pieces: [UnsafeMutableRawBufferPointer], at offset: UInt64, write: Bool) -> Bool {
        var position = offset
        for piece in pieces {
            var done = 0
            while done < piece.count {
                let n = write
                    ? pwrite(fd.rawValue, piece.baseAddress! + done, piece.count - done, off_t(position))
                    : pread(fd.rawValue, piece.baseAddress! + done, piece.count - done, off_t(position))
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                if n == 0 { return false }
                done += n
                position += UInt64(n)
            }
        }
        return true
    }

    /// Makes every completed write durable.
    public func flush() -> Bool {
        while fdatasync(fd.rawValue) != 0 {
            if errno != EINTR { return false }
        }
        return true
    }

    /// Deallocates (discard) or zeroes a range; falls back to writing zeros.
    public func zero(at offset: UInt64, length: UInt64, deallocate: Bool) -> Bool {
        let mode = deallocate ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE
        if !isBlockDevice, clinux_fallocate(fd.rawValue, Int32(mode), off_t(offset), off_t(length)) == 0 { return true }
        var zeros = [UInt8](repeating: 0, count: 1 << 16)
        var position = offset
        let end = offset + length
        return zeros.withUnsafeMutableBytes { buffer in
            while position < end {
                let n = Int(min(UInt64(buffer.count), end - position))
                guard transfer([UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n])], at: position, write: true) else {
                    return false
                }
                position += UInt64(n)
            }
            return true
        }
    }
}
