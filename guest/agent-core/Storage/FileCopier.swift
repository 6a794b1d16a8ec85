#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import AgentProtocol

/// CopyFile: files the host hands the guest (resolv.conf, hosts, hostname that were bind
/// mounts on the host), in chunks. Only below the state directory (the runtime then bind
/// mounts them into containers from there), at most `maxFileSize`, written to a
/// temporary name and renamed into place when the last chunk arrives.
struct FileCopier {
    static let maxFileSize: Int64 = 256 << 20
    let root: String

    func copy(_ request: Grpc_CopyFileRequest) throws(AgentError) {
        let path = request.path
        let components = path.split(separator: "/")
        guard path.hasPrefix(root + "/"), !components.contains(".."), !components.contains(".") else {
            throw .invalid("CopyFile path must be below \(root) without '.' or '..': \(path)")
        }
        guard request.fileSize >= 0, request.fileSize <= FileCopier.maxFileSize else {
            throw .invalid("CopyFile size \(request.fileSize) outside 0...\(FileCopier.maxFileSize)")
        }
        let parent = String(path[..<path.lastIndex(of: "/")!])
        try makeDirectories(parent, mode: request.dirMode == 0 ? 0o755 : mode_t(request.dirMode & 0o7777))
        let mode = request.fileMode
        if mode & UInt32(S_IFMT) == UInt32(S_IFDIR) {
            if mkdir(path, mode_t(mode & 0o7777)) != 0 && errno != EEXIST { throw .errno("mkdir \(path)") }
            _ = chown(path, request.uid, request.gid)
            return
        }
        let data = Array(request.data)
        // Written so that no sum can overflow: fileSize and the chunk are both bounded.
        guard request.offset >= 0, request.fileSize >= 0, Int64(data.count) <= request.fileSize,
              request.offset <= request.fileSize - Int64(data.count) else {
            throw .invalid("CopyFile chunk at \(request.offset)+\(data.count) beyond size \(request.fileSize)")
        }
        let temporary = path + ".kata-copy"
        let flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (request.offset == 0 ? O_TRUNC : 0)
        let fd = open(temporary, flags, 0o600)
        guard fd >= 0 else { throw .errno("open \(temporary)") }
        defer { close(fd) }
        var written = 0
        while written < data.count {
            let n = data.withUnsafeBytes { pwrite(fd, $0.baseAddress! + written, data.count - written, off_t(request.offset) + off_t(written)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .errno("write \(temporary)")
            }
            written += n
        }
        if request.offset == request.fileSize - Int64(data.count) {
            guard ftruncate(fd, off_t(request.fileSize)) == 0 else { throw .errno("truncate \(temporary)") }
            guard fchmod(fd, mode_t((mode == 0 ? 0o644 : mode) & 0o7777)) == 0 else { throw .errno("chmod \(temporary)") }
            guard fchown(fd, request.uid, request.gid) == 0 else { throw .errno("chown \(temporary)") }
            guard rename(temporary, path) == 0 else { throw .errno("rename \(temporary) to \(path)") }
        }
    }
}
