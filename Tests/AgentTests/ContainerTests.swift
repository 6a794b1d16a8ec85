import AgentProtocol
import Foundation
import Runtime
import Testing
import TestSupport

/// Containers run by a real agent (host process in fresh namespaces) from a busybox
/// rootfs directory, driven through AgentClient.
@Suite struct ContainerTests {
    @Test func outputErrorsAndExitCode() throws {
        let agent = try AgentHarness()
        defer { agent.stop() }
        let rootfs = try ContainerFixture.makeRootfs()
        let process = ContainerFixture.process(["sh", "-c", "echo hello from $(hostname) pid $$; echo oops >&2; exit 3"])
        let began = Date()
        try agent.client.run("c1", spec: try ContainerFixture.spec(rootfs: rootfs, process: process))
        var request = Grpc_ReadStreamRequest()
        request.containerID = "c1"
        request.len = 4096
        let first = try agent.client.readStdout(request).data
        let latency = Date().timeIntervalSince(began)
        let rest = try agent.client.readAll("c1")
        #expect(String(decoding: first + rest, as: UTF8.self) == "hello from agent-test pid 1\n")
        #expect(String(decoding: try agent.client.readAll("c1", stderr: true), as: UTF8.self) == "oops\n")
        #expect(try agent.client.wait("c1") == 3)
        try agent.client.remove("c1")
        print("MEASURE container start latency (CreateContainer+StartContainer to first output): \(String(format: "%.1f", latency * 1000)) ms")
    }

    @Test func stdinRoundTripAndExec() throws {
        let agent = try AgentHarness()
        defer { agent.stop() }
        let rootfs = try ContainerFixture.makeRootfs()
        // The init copies stdin to stdout until stdin closes.
        try agent.client.run("cat", spec: try ContainerFixture.spec(rootfs: rootfs, process: ContainerFixture.process(["cat"])))
        #expect(try agent.client.write("cat", "line one\n") == 9)
        #expect(try agent.client.write("cat", "line two\n") == 9)

        // Exec into the running container: same PID, UTS and mount namespaces, user
        // and cwd as asked, exact exit code.
        let script = "echo pid1=$(cat /proc/1/comm) host=$(hostname) id=$(id -u):$(id -g) cwd=$(pwd); echo to-stderr >&2; exit 42"
        try agent.client.exec("cat", exec: "e1", process: ContainerFixture.process(["sh", "-c", script], cwd: "/tmp", uid: 1000, gid: 1000))
        #expect(String(decoding: try agent.client.readAll("cat", exec: "e1"), as: UTF8.self)
                == "pid1=cat host=agent-test id=1000:1000 cwd=/tmp\n")
        #expect(String(decoding: try agent.client.readAll("cat", exec: "e1", stderr: true), as: UTF8.self) == "to-stderr\n")
        #expect(try agent.client.wait("cat", exec: "e1") == 42)

        // An exec whose program does not exist fails with an error, not a hang.
        #expect(throws: AgentClientError.self) {
            try agent.client.exec("cat", exec: "e2", process: ContainerFixture.process(["/no/such/program"]))
        }

        try agent.client.closeStdin("cat")
        #expect(String(decoding: try agent.client.readAll("cat"), as: UTF8.self) == "line one\nline two\n")
        #expect(try agent.client.wait("cat") == 0)
        try agent.client.remove("cat")
    }

    @Test func terminalProcess() throws {
        let agent = try AgentHarness()
        defer { agent.stop() }
        let rootfs = try ContainerFixture.makeRootfs()
        var process = ContainerFixture.process(["sh", "-c", "tty; stty size; read line; echo got:$line"], terminal: true)
        process["consoleSize"] = ["height": 30, "width": 100]
        try agent.client.run("tty", spec: try ContainerFixture.spec(rootfs: rootfs, process: process))
        _ = try agent.client.write("tty", "typed\n")
        let output = String(decoding: try agent.client.readAll("tty"), as: UTF8.self)
        // The terminal echoes input and writes CRLF line ends.
        #expect(output.contains("/dev/pts/0\r\n"))
        #expect(output.contains("30 100\r\n"))
        #expect(output.contains("got:typed\r\n"))
        #expect(try agent.client.wait("tty") == 0)
        try agent.client.remove("tty")

        // A terminal exec'd into a running container; TtyWinResize reaches it.
        try agent.client.run("tty2", spec: try ContainerFixture.spec(rootfs: rootfs, process: ContainerFixture.process(["sleep", "1000"])))
        try agent.client.exec("tty2", exec: "shell", process: ContainerFixture.process(["sh", "-c", "read x; tty; stty size; exit 5"], terminal: true))
        var resize = Grpc_TtyWinResizeRequest()
        resize.containerID = "tty2"
        resize.execID = "shell"
        resize.row = 40
        resize.column = 120
        _ = try agent.client.ttyWinResize(resize)
        _ = try agent.client.write("tty2", exec: "shell", "go\n")
        let shell = String(decoding: try agent.client.readAll("tty2", exec: "shell"), as: UTF8.self)
        #expect(shell.contains("/dev/pts/0\r\n40 120\r\n"))
        #expect(try agent.client.wait("tty2", exec: "shell") == 5)
        // A pipe process has no terminal to resize.
        resize.execID = ""
        #expect(throws: AgentClientError.self) { _ = try agent.client.ttyWinResize(resize) }
        try agent.client.remove("tty2")
    }

    @Test func signalsAndExitCodes() throws {
        let agent = try AgentHarness()
        defer { agent.stop() }
        let rootfs = try ContainerFixture.makeRootfs()
        let trap = "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done"
        try agent.client.run("sig", spec: try ContainerFixture.spec(rootfs: rootfs, process: ContainerFixture.process(["sh", "-c", trap])))
        var request = Grpc_ReadStreamRequest()
        request.containerID = "sig"
        request.len = 64
        #expect(String(decoding: try agent.client.readStdout(request).data, as: UTF8.self) == "ready\n")

        // An exec'd process killed by a signal: 128 + signal number.
        try agent.client.exec("sig", exec: "sleeper", process: ContainerFixture.process(["sleep", "1000"]))
        try agent.client.signal("sig", exec: "sleeper", SIGTERM)
        #expect(try agent.client.wait("sig", exec: "sleeper") == 128 + SIGTERM)
        try agent.client.exec("sig", exec: "killed", process: ContainerFixture.process(["sleep", "1000"]))
        try agent.client.signal("sig", exec: "killed", SIGKILL)
        #expect(try agent.client.wait("sig", exec: "killed") == 128 + SIGKILL)

        // The init handles TERM itself and exits 7.
        try agent.client.signal("sig", SIGTERM)
        #expect(String(decoding: try agent.client.readAll("sig"), as: UTF8.self) == "got TERM\n")
        #expect(try agent.client.wait("sig") == 7)
        try agent.client.remove("sig")
    }

    @Test func memoryLimitKillsTheProcess() throws {
        let agent = try AgentHarness()
        defer { agent.stop() }
        let rootfs = try ContainerFixture.makeRootfs()
        let limit = 32 << 20
        // dd allocates a 128 MiB buffer and fills it: over the limit, the OOM killer ends it.
        let process = ContainerFixture.process(["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"])
        let spec = try ContainerFixture.spec(rootfs: rootfs, process: process,
                                             resources: ["memory": ["limit": limit, "swap": limit], "pids": ["limit": 64]])
        try agent.client.run("oom", spec: spec)
        #expect(try agent.client.wait("oom") == 128 + SIGKILL)
        var stats = Grpc_StatsContainerRequest()
        stats.containerID = "oom"
        let reply = try agent.client.statsContainer(stats)
        #expect(reply.cgroupStats.memoryStats.limit == UInt64(limit))
        #expect(reply.cgroupStats.pidsStats.limit == 64)
        try agent.client.remove("oom")

        // The same program under a limit it fits in completes.
        let fits = ContainerFixture.process(["dd", "if=/dev/zero", "of=/dev/null", "bs=1M", "count=1"])
        try agent.client.run("fits", spec: try ContainerFixture.spec(rootfs: rootfs, process: fits,
                                                                           resources: ["memory": ["limit": limit, "swap": limit]]))
        #expect(try agent.client.wait("fits") == 0)
        try agent.client.remove("fits")
    }

    @Test func stdout100MiBArrivesIntact() throws {
        let agent = try AgentHarness()
        defer { agent.stop() }
        let rootfs = try ContainerFixture.makeRootfs()
        // 100 MiB of a pseudo-random pattern, written into the rootfs and cat'ed.
        let size = 100 << 20
        var pattern = Data(count: size)
        pattern.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt64.self)
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            for index in words.indices {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                words[index] = state
            }
        }
        try pattern.write(to: URL(fileURLWithPath: rootfs + "/data.bin"))
        let began = Date()
        try agent.client.run("big", spec: try ContainerFixture.spec(rootfs: rootfs, process: ContainerFixture.process(["cat", "/data.bin"])))
        let received = try agent.client.readAll("big")
        let seconds = Date().timeIntervalSince(began)
        #expect(received.count == size)
        #expect(received == pattern)
        #expect(try agent.client.wait("big") == 0)
        try agent.client.remove("big")
        print("MEASURE stdout throughput: 100 MiB in \(String(format: "%.2f", seconds)) s = \(String(format: "%.0f", 100 / seconds)) MiB/s")
        if let rss = agent.residentSetKiB() { print("MEASURE agent RSS after streaming: \(rss) KiB") }
    }
    @Test func specSecurityAndCopiedFiles() throws {
        let agent = try AgentHarness()
        defer { agent.stop() }
        let rootfs = try ContainerFixture.makeRootfs()
        // The host's hosts file arrives through CopyFile and is bind-mounted read-only.
        var copy = Grpc_CopyFileRequest()
        copy.path = agent.stateDirectory + "/shared/hosts"
        copy.data = Data("10.0.0.7 from-the-host\n".utf8)
        copy.fileSize = Int64(copy.data.count)
        copy.fileMode = 0o644
        _ = try agent.client.copyFile(copy)

        let script = "cat /etc/hosts; ulimit -n; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; "
            + "touch /x 2>/dev/null || echo rofs; echo hosts-rw=$(touch /etc/hosts 2>/dev/null && echo yes || echo no); "
            + "echo keys=$(wc -c < /proc/keys); touch /tmp/ok && echo tmp-writable"
        let process = ContainerFixture.process(["sh", "-c", script], extra: [
            "rlimits": [["type": "RLIMIT_NOFILE", "soft": 123, "hard": 456]],
            "capabilities": ["bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]],
            "noNewPrivileges": true,
        ])
        var spec = try JSONSerialization.jsonObject(with: try ContainerFixture.spec(rootfs: rootfs, process: process, readonlyRootfs: true)) as! [String: Any]
        var mounts = spec["mounts"] as! [[String: Any]]
        mounts.append(["destination": "/etc/hosts", "type": "bind", "source": copy.path, "options": ["rbind", "ro"]])
        spec["mounts"] = mounts
        try agent.client.run("secure", spec: try JSONSerialization.data(withJSONObject: spec))
        let output = String(decoding: try agent.client.readAll("secure"), as: UTF8.self)
        #expect(output == """
            10.0.0.7 from-the-host
            123
            CapEff:\t0000000000000020
            CapBnd:\t0000000000000021
            NoNewPrivs:\t1
            rofs
            hosts-rw=no
            keys=0
            tmp-writable

            """, "\(output)")
        #expect(try agent.client.wait("secure") == 0)
        var list = Grpc_ListProcessesRequest()
        list.containerID = "secure"
        list.format = "json"
        #expect(String(decoding: try agent.client.listProcesses(list).processList, as: UTF8.self) == "[]")
        try agent.client.remove("secure")
    }
}
