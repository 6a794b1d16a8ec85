import CLinux
import Glibc
import LinuxSupport

/// Entering a container's network namespace (the monitor does, so that the VMM opens its
/// taps there) and running iproute2 inside one (with nsenter, by absolute path: callers
/// such as podman run the runtime without PATH).
public enum NetworkNamespace {
    public static func enter(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open network namespace \(path)") }
        defer { close(fd) }
        guard clinux_setns(fd, 0x4000_0000 /* CLONE_NEWNET */) == 0 else { throw SystemError("setns \(path)") }
    }

    static func tool(_ names: [String]) throws -> String {
        for name in names where access(name, X_OK) == 0 { return name }
        throw RuntimeError("\(names[0]) not found (install \(names[0].hasSuffix("nsenter") ? "util-linux" : "iproute2"))")
    }

    /// Runs `argv` (ip or tc) inside the namespace; returns stdout, throws with stderr.
    @discardableResult
    public static func run(in namespace: String, _ argv: [String]) throws -> String {
        let nsenter = try tool(["/usr/bin/nsenter", "/bin/nsenter", "/usr/sbin/nsenter"])
        let program: String
        switch argv[0] {
        case "ip": program = try tool(["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"])
        case "tc": program = try tool(["/usr/sbin/tc", "/sbin/tc", "/usr/bin/tc"])
        default: program = argv[0]
        }
        let output = try FileDescriptors.pipe()
        let errors = try FileDescriptors.pipe()
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devNull) }
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(path: nsenter, argv: ["nsenter", "--net=\(namespace)", program] + argv.dropFirst(),
                                           env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                                           fds: [0: devNull, 1: output.write, 2: errors.write])
        } catch {
            [output.read, output.write, errors.read, errors.write].forEach { close($0) }
            throw error
        }
        close(output.write)
        close(errors.write)
        let out = (try? FileDescriptors.readAll(output.read, limit: 1 << 20)) ?? []
        let err = (try? FileDescriptors.readAll(errors.read, limit: 8192)) ?? []
        close(output.read)
        close(errors.read)
        let termination = try child.wait()
        guard termination == .exited(0) else {
            throw RuntimeError("\(argv.joined(separator: " ")) in \(namespace): \(String(decoding: err, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return String(decoding: out, as: UTF8.self)
    }
}
