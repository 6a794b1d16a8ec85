import Glibc

/// Proves that the namespaces a spec names by path are the container's own before the
/// runtime changes anything in them. A container that joins another container's
/// namespaces names `/proc/<pid>/ns/...` of that container's pid, which is our process
/// shim in the host's namespaces: following it would put taps and tc redirects on the
/// host's (or every other pod's) veths. Until pods land such a spec is refused.
public enum NamespaceGuard {
    /// A namespace as the kernel names it: the nsfs inode, which `readlink` shows as
    /// `net:[4026531840]`.
    public struct Identity: Equatable, Sendable {
        public var kind: String
        public var inode: UInt64
    }

    /// The `/proc/<pid>/ns/` file for an OCI namespace type.
    static let procNames = ["network": "net", "ipc": "ipc", "uts": "uts", "pid": "pid", "mount": "mnt",
                            "user": "user", "cgroup": "cgroup", "time": "time"]

    /// The namespace behind `path`, or an error when `path` is not a namespace at all.
    public static func identity(of path: String) throws -> Identity {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError("open namespace \(path)") }
        defer { close(fd) }
        // The fd's own link names the namespace, whatever links led to `path`.
        var target = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/self/fd/\(fd)", &target, target.count - 1)
        guard n > 0 else { throw SystemCallError("readlink namespace \(path)") }
        let link = String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let open = link.firstIndex(of: ":"), link.hasSuffix("]"),
              link[link.index(after: open)...].hasPrefix("["),
              let inode = UInt64(link[link.index(open, offsetBy: 2)..<link.index(before: link.endIndex)])
        else { throw RuntimeError("\(path) is not a namespace (it is \(link))") }
        return Identity(kind: String(link[..<open]), inode: inode)
    }

    /// Checks every namespace the spec joins by path. `containers` are the other
    /// containers of this runtime root with the pids of their host-side processes;
    /// `setsUpNetworking`: the runtime will put taps and filters in the network namespace.
    public static func check(_ namespaces: [Spec.Namespace], containers: [(id: String, pids: [Int32])],
                             setsUpNetworking: Bool) throws {
        for namespace in namespaces {
            guard let path = namespace.path, !path.isEmpty else { continue }
            guard let procName = procNames[namespace.type] else {
                throw RuntimeError("unknown namespace type \(namespace.type)")
            }
            let joined = try identity(of: path)
            guard joined.kind == procName else {
                throw RuntimeError("\(namespace.type) namespace \(path) is a \(joined.kind) namespace")
            }
            for container in containers {
                for pid in container.pids where (try? identity(of: "/proc/\(pid)/ns/\(procName)")) == joined {
                    throw RuntimeError("joining the \(namespace.type) namespace of container \(container.id) (\(path)) "
                        + "is not supported: containers that share a sandbox need pods")
                }
            }
            guard namespace.type == "network", setsUpNetworking else { continue }
            // The runtime sets up taps and tc filters in the container's network namespace:
            // never in the one it runs in itself, nor in the host's.
            if (try? identity(of: "/proc/self/ns/net")) == joined {
                throw RuntimeError("network namespace \(path) is the runtime's own: refusing to set up networking in it")
            }
            if (try? identity(of: "/proc/1/ns/net")) == joined {
                throw RuntimeError("network namespace \(path) is the host's: refusing to set up networking in it")
            }
        }
    }
}
