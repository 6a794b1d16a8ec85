#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// mkdir -p: creates `path` and every missing parent with `mode`; an existing one is fine.
public func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
    var current = ""
    for component in path.split(separator: "/") {
        current += "/" + component
        if mkdir(current, mode) != 0 && errno != EEXIST { throw SystemError("mkdir \(current)") }
    }
}
