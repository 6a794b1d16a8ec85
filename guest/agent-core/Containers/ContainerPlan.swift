#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import AgentProtocol
import OCI

/// A container resolved from its OCI spec: the root filesystem, every mount with its
/// host-side target (joined inside the rootfs without following symlinks out of it),
/// the namespaces to create, the paths to mask or make read-only, and the init process.
struct ContainerPlan {
    struct Mount {
        var source: String?
        var target: String
        var fstype: String?
        var flags: UInt
        var data: String?
        var remountFlags: UInt
        var propagation: UInt
        var isFile: Bool
    }

    /// clone(2) namespace flags (linux/sched.h), not exported by Glibc's module.
    enum CloneFlag {
        static let newNS: Int32 = 0x0002_0000
        static let newCgroup: Int32 = 0x0200_0000
        static let newUTS: Int32 = 0x0400_0000
        static let newIPC: Int32 = 0x0800_0000
        static let newPID: Int32 = 0x2000_0000
        static let newNet: Int32 = 0x4000_0000
    }

    var rootfs: String
    var readonlyRootfs: Bool
    var mounts: [Mount] = []
    var symlinks: [(target: String, path: String)] = []
    var maskedPaths: [String]
    var readonlyPaths: [String]
    var hostname: String?
    var cloneFlags: Int32
    /// Namespaces joined from another container of the sandbox (`ContainerNamespaceReference`),
    /// in the order the spec names them.
    var joins: [(type: String, container: String)] = []
    var process: ProcessPlan
    var resources: Spec.Resources?
    var devices: [DeviceNode] = []
    var sysctls: [Sysctl] = []

    /// The devices a container gets when its spec mounts a fresh /dev (runc's defaults),
    /// bind-mounted from the agent's /dev.
    static let defaultDevices = ["null", "zero", "full", "random", "urandom", "tty"]

    /// `rootfsBase`: where a relative root.path is resolved (the container's directory).
    /// `ownsNetwork`: the agent is the VM's init, whose network is the container's.
    init(spec: Spec, rootfsBase: String, ownsNetwork: Bool = false) throws(AgentError) {
        guard let root = spec.root else { throw .invalid("the spec has no root") }
        guard let process = spec.process else { throw .invalid("the spec has no process") }
        self.process = try ProcessPlan(process)
        let rootPath = root.path.hasPrefix("/") ? root.path : rootfsBase + "/" + root.path
        var info = stat()
        guard stat(rootPath, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw .invalid("root.path \(rootPath) is not a directory")
        }
        rootfs = rootPath
        readonlyRootfs = root.readonly ?? false
        maskedPaths = spec.linux?.maskedPaths ?? []
        readonlyPaths = spec.linux?.readonlyPaths ?? []
        resources = spec.linux?.resources

        var flags: Int32 = CloneFlag.newNS
        var newUTS = false
        var joinedUTS = false
        var newNet = false
        for namespace in spec.linux?.namespaces ?? [] {
            if namespace.type == "network" {
                // In a VM the guest's network is the container's; beside a host test a new
                // one is made where the spec asks for one, as runc does.
                if !ownsNetwork && (namespace.path ?? "").isEmpty {
                    flags |= CloneFlag.newNet
                    newNet = true
                }
                continue
            }
            if let path = namespace.path, !path.isEmpty {
                guard let reference = ContainerNamespaceReference.parse(path), reference.type == namespace.type,
                      ContainerNamespaceReference.shareable.contains(namespace.type) else {
                    throw .invalid("joining a \(namespace.type) namespace by path is not supported (only the ipc and uts "
                        + "namespaces of another container of the sandbox, as \(ContainerNamespaceReference.path(container: "ID", type: namespace.type)))")
                }
                try Sandbox.validate(id: reference.container)
                joins.append((namespace.type, reference.container))
                if namespace.type == "uts" { joinedUTS = true }
                continue
            }
            switch namespace.type {
            case "mount": flags |= CloneFlag.newNS
            case "pid": flags |= CloneFlag.newPID
            case "uts": flags |= CloneFlag.newUTS; newUTS = true
            case "ipc": flags |= CloneFlag.newIPC
            case "cgroup": flags |= CloneFlag.newCgroup
            case "user", "time": throw .invalid("\(namespace.type) namespaces are not supported")
            default: throw .invalid("unknown namespace type \(namespace.type)")
            }
        }
        cloneFlags = flags
        if let name = spec.hostname, !name.isEmpty {
            // As runc: a UTS namespace of the container's own or of its pod, never the agent's.
            guard newUTS || joinedUTS else { throw .invalid("hostname needs a new uts namespace") }
            guard name.utf8.count <= 64 else { throw .invalid("hostname longer than 64 bytes") }
            hostname = name
        }

        var mountsDev = false
        for mount in spec.mounts ?? [] {
            guard mount.destination.hasPrefix("/") else {
                throw .invalid("mount destination must be absolute: \(mount.destination)")
            }
            let options = MountOptions(mount.options ?? [])
            var type = mount.type
            let bind = options.isBind || type == "bind"
            var flags = options.flags
            var remount: UInt = 0
            var isFile = false
            var source = mount.source
            if bind {
                flags |= UInt(MS_BIND)
                type = nil
                guard let bindSource = source, bindSource.hasPrefix("/") else {
                    throw .invalid("bind mount of \(mount.destination) needs an absolute source")
                }
                var sourceInfo = stat()
                guard stat(bindSource, &sourceInfo) == 0 else {
                    throw .invalid("bind mount source \(bindSource) does not exist")
                }
                isFile = sourceInfo.st_mode & S_IFMT != S_IFDIR
                // A bind mount ignores the other flags: they take a remount.
                let extra = flags & ~UInt(MS_BIND | MS_REC | MS_REMOUNT)
                if extra != 0 { remount = extra }
                flags &= UInt(MS_BIND | MS_REC)
            } else if type == "cgroup" {
                // The container sees the cgroup2 hierarchy (read-only unless asked).
                type = "cgroup2"
                source = "cgroup2"
            }
            if mount.destination == "/dev" { mountsDev = true }
            let target = try ContainerPlan.secureJoin(rootfs, mount.destination)
            mounts.append(Mount(source: source, target: target, fstype: type, flags: flags, data: options.dataString,
                                remountFlags: remount, propagation: options.propagation, isFile: isFile))
        }
        if mountsDev {
            for device in ContainerPlan.defaultDevices {
                mounts.append(Mount(source: "/dev/" + device, target: rootfs + "/dev/" + device, fstype: nil,
                                    flags: UInt(MS_BIND), data: nil, remountFlags: 0, propagation: 0, isFile: true))
            }
            symlinks = [("pts/ptmx", rootfs + "/dev/ptmx"), ("/proc/self/fd", rootfs + "/dev/fd"),
                        ("/proc/self/fd/0", rootfs + "/dev/stdin"), ("/proc/self/fd/1", rootfs + "/dev/stdout"),
                        ("/proc/self/fd/2", rootfs + "/dev/stderr")]
        }
        devices = try DeviceNode.plan(spec.linux?.devices ?? [])
        let namespaceTypes = Set((spec.linux?.namespaces ?? []).map(\.type))
        sysctls = try Sysctl.plan(spec.linux?.sysctl ?? [:], namespaces: namespaceTypes, ownsNetwork: ownsNetwork || newNet)
        for path in maskedPaths + readonlyPaths where !path.hasPrefix("/") || path.utf8.contains(0) {
            throw .invalid("masked and readonly paths must be absolute: \(path)")
        }
        for mount in mounts {
            for text in [mount.source ?? "", mount.target, mount.fstype ?? "", mount.data ?? ""] where text.utf8.contains(0) {
                throw .invalid("mount strings must not contain NUL bytes")
            }
        }
    }

    /// `root` + `path`, resolving symlinks of `path` as if `root` were /, so that a
    /// symlink inside the rootfs cannot send a mount outside it.
    static func secureJoin(_ root: String, _ path: String) throws(AgentError) -> String {
        var pending = path.split(separator: "/").map(String.init)
        var resolved: [String] = []
        var links = 0
        while !pending.isEmpty {
            let component = pending.removeFirst()
            if component.isEmpty || component == "." { continue }
            if component == ".." {
                if !resolved.isEmpty { resolved.removeLast() }
                continue
            }
            let full = root + "/" + (resolved + [component]).joined(separator: "/")
            var info = stat()
            if lstat(full, &info) == 0 && info.st_mode & S_IFMT == S_IFLNK {
                links += 1
                guard links <= 255 else { throw .invalid("too many symlinks below \(path)") }
                var buffer = [CChar](repeating: 0, count: 4096)
                let n = readlink(full, &buffer, buffer.count - 1)
                guard n >= 0 else { throw .errno("readlink \(full)") }
                let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if target.hasPrefix("/") { resolved = [] }
                pending = target.split(separator: "/").map(String.init) + pending
                continue
            }
            resolved.append(component)
        }
        return resolved.isEmpty ? root : root + "/" + resolved.joined(separator: "/")
    }
}
