import AgentProtocol
import Glibc
import OCI
import LinuxSupport

/// Proves that the namespaces a spec names by path are the container's own before the
/// runtime changes anything in them. A container that joins another container's
/// namespaces names `/proc/<pid>/ns/...` of that container's pid, which is our process
/// shim in the host's namespaces: following it would put taps and tc redirects on the
/// host's (or every other pod's) veths. Such a spec is refused, except where the agent
/// can share the namespace itself: the IPC and UTS namespaces of another container of
/// the same agent (`sharesWithSandbox`), which the agent joins in the guest.
public enum NamespaceGuard {
    /// A namespace a container takes from another container of its sandbox.
    public struct SharedNamespace: Equatable, Sendable {
        public var type: String
        public var container: String

        public init(type: String, container: String) {
            self.type = type
            self.container = container
        }
    }

    /// A namespace as the kernel names it: its nsfs inode (the number `readlink` shows in
    /// `net:[4026531840]`), the same whether reached through `/proc/<pid>/ns/` or a bind
    /// mount such as `/var/run/netns/<name>`.
    public struct Identity: Equatable, Sendable {
        public var device: UInt64
        public var inode: UInt64
    }

    /// The `/proc/<pid>/ns/` file for an OCI namespace type.
    static let procNames = ["network": "net", "ipc": "ipc", "uts": "uts", "pid": "pid", "mount": "mnt",
                            "user": "user", "cgroup": "cgroup", "time": "time"]

    /// The namespace behind `path`, or an error when `path` is not a namespace at all.
    public static func identity(of path: String) throws -> Identity {
        let identity = try fileIdentity(path)
        // Every namespace file is an inode of the kernel's one nsfs: the device of our own
        // network namespace's file tells a namespace from any other file.
        guard identity.device == (try fileIdentity("/proc/self/ns/net")).device else {
            throw RuntimeError("\(path) is not a namespace")
        }
        return identity
    }

    private static func fileIdentity(_ path: String) throws -> Identity {
        var info = stat()
        guard stat(path, &info) == 0 else { throw SystemError("stat namespace \(path)") }
        return Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// Checks every namespace the spec joins by path, and returns those it takes from
    /// another container. `containers` are the other containers of this runtime root with
    /// the pids of their host-side processes; `setsUpNetworking`: the runtime will put taps
    /// and filters in the network namespace; `sharesWithSandbox`: the containers share one
    /// agent, which can join their IPC and UTS namespaces.
    @discardableResult
    public static func check(_ namespaces: [Spec.Namespace], containers: [(id: String, pids: [Int32])],
                             setsUpNetworking: Bool, sharesWithSandbox: Bool = false) throws -> [SharedNamespace] {
        var shared: [SharedNamespace] = []
        for namespace in namespaces {
            guard let path = namespace.path, !path.isEmpty else { continue }
            guard let procName = procNames[namespace.type] else {
                throw RuntimeError("unknown namespace type \(namespace.type)")
            }
            // Callers name another container's namespace by its process: /proc/<pid>/ns/<name>
            // (podman pods, docker --ipc container:X, containerd's CRI for a pod's pause).
            if sharesWithSandbox, ContainerNamespaceReference.shareable.contains(namespace.type),
               let pid = processPid(path, name: procName), let owner = containers.first(where: { $0.pids.contains(pid) }) {
                shared.append(SharedNamespace(type: namespace.type, container: owner.id))
                continue
            }
            let joined = try identity(of: path)
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
        return shared
    }

    /// The pid of `/proc/<pid>/ns/<name>`, else nil.
    static func processPid(_ path: String, name: String) -> Int32? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "proc", parts[3] == "ns", parts[4] == name,
              let pid = Int32(parts[2]), pid > 0 else { return nil }
        return pid
    }
}
