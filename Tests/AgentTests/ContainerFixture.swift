import AgentProtocol
import Foundation
import Runtime
import TestSupport

/// OCI specs for containers running in a busybox rootfs (`Fixtures.busyboxRootfs`), and
/// AgentClient conveniences for the tests.
enum ContainerFixture {
    static func makeRootfs() throws -> String { try Fixtures.busyboxRootfs() }

    /// The OCI process object.
    static func process(_ args: [String], terminal: Bool = false, env: [String]? = nil, cwd: String = "/",
                        uid: Int = 0, gid: Int = 0, extra: [String: Any] = [:]) -> [String: Any] {
        var process: [String: Any] = [
            "terminal": terminal,
            "user": ["uid": uid, "gid": gid],
            "args": args,
            "env": env ?? ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": cwd,
        ]
        for (key, value) in extra { process[key] = value }
        return process
    }

    /// A config.json like `runc spec` writes (mount, pid, uts, ipc namespaces; proc, /dev
    /// tmpfs, devpts, shm, sysfs; masked and read-only paths), for `rootfs`.
    static func spec(rootfs: String, process: [String: Any], hostname: String = "agent-test",
                     resources: [String: Any]? = nil, readonlyRootfs: Bool = false) throws -> Data {
        var linux: [String: Any] = [
            "namespaces": [["type": "mount"], ["type": "pid"], ["type": "uts"], ["type": "ipc"], ["type": "network"]],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger", "/proc/bus"],
        ]
        if let resources { linux["resources"] = resources }
        let spec: [String: Any] = [
            "ociVersion": "1.0.2",
            "process": process,
            "root": ["path": rootfs, "readonly": readonlyRootfs],
            "hostname": hostname,
            "mounts": [
                ["destination": "/proc", "type": "proc", "source": "proc"],
                ["destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]],
                ["destination": "/dev/pts", "type": "devpts", "source": "devpts",
                 "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]],
                ["destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]],
                ["destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]],
                ["destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]],
            ],
            "linux": linux,
        ]
        return try JSONSerialization.data(withJSONObject: spec)
    }
}

extension AgentClient {
    /// Creates and starts a container whose spec is `spec`.
    func run(_ id: String, spec: Data) throws {
        var create = Grpc_CreateContainerRequest()
        create.containerID = id
        create.ociSpecJson = spec
        _ = try createContainer(create)
        var start = Grpc_StartContainerRequest()
        start.containerID = id
        _ = try startContainer(start)
    }

    /// Everything a process writes to stdout (or stderr) until end of stream.
    func readAll(_ id: String, exec: String = "", stderr: Bool = false) throws -> Data {
        var collected = Data()
        var request = Grpc_ReadStreamRequest()
        request.containerID = id
        request.execID = exec
        request.len = 1 << 20
        while true {
            let chunk = stderr ? try readStderr(request).data : try readStdout(request).data
            if chunk.isEmpty { return collected }
            collected.append(chunk)
        }
    }

    func wait(_ id: String, exec: String = "") throws -> Int32 {
        var request = Grpc_WaitProcessRequest()
        request.containerID = id
        request.execID = exec
        return try waitProcess(request).status
    }

    func remove(_ id: String) throws {
        var request = Grpc_RemoveContainerRequest()
        request.containerID = id
        _ = try removeContainer(request)
    }

    func exec(_ id: String, exec: String, process: [String: Any]) throws {
        var request = Grpc_ExecProcessRequest()
        request.containerID = id
        request.execID = exec
        request.processJson = try JSONSerialization.data(withJSONObject: process)
        _ = try execProcess(request)
    }

    func signal(_ id: String, exec: String = "", _ signal: Int32) throws {
        var request = Grpc_SignalProcessRequest()
        request.containerID = id
        request.execID = exec
        request.signal = UInt32(signal)
        _ = try signalProcess(request)
    }

    func write(_ id: String, exec: String = "", _ text: String) throws -> UInt32 {
        var request = Grpc_WriteStreamRequest()
        request.containerID = id
        request.execID = exec
        request.data = Data(text.utf8)
        return try writeStdin(request).len
    }

    func closeStdin(_ id: String, exec: String = "") throws {
        var request = Grpc_CloseStdinRequest()
        request.containerID = id
        request.execID = exec
        _ = try closeStdin(request)
    }
}
