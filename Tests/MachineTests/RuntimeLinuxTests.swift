import Foundation
@testable import Runtime
import TestSupport
import Testing

extension LinuxGuestTests {
    /// kata-runtime with a real microVM: the shared kernel, the agent's initramfs, the
    /// rootfs as a virtio-block ext4 image made by the runtime, the agent over hybrid vsock.
    /// In the serialized Linux suite (each boot takes about a minute here); two boots.
    @Suite struct RuntimeLinuxTests {
        /// A harness whose configuration boots the shared kernel (a failure in CI and a skip
        /// elsewhere where it is absent).
        func harness(hypervisorKeys: String = "") throws -> RuntimeHarness {
            guard let kernel = try Fixtures.sharedKernel() else { try Fixtures.missing("../shared/guest-kernel") }
            let initrd: URL
            if let prebuilt = ProcessInfo.processInfo.environment["KATA_TEST_AGENT_INITRAMFS"] {
                initrd = URL(fileURLWithPath: prebuilt)  // an image built beforehand
            } else {
                initrd = try Fixtures.agentInitramfs()
            }
            return try RuntimeHarness(config: """
                [hypervisor.kata]
                kernel = "\(kernel.path)"
                initrd = "\(initrd.path)"
                kernel_params = "\(Fixtures.sharedKernelCmdline)"
                default_vcpus = 2
                default_memory = 512
                \(hypervisorKeys)

                [agent.kata]
                dial_timeout = 400
                """)
        }

        func leftovers(_ harness: RuntimeHarness, _ id: String) -> [String] {
            let store = StateStore(root: harness.root)
            return [store.directory(of: id), store.socketDirectory(of: id)].filter { FileManager.default.fileExists(atPath: $0) }
        }

        func vmProcessesAlive(_ record: ContainerRecord) -> [Int32] {
            [record.monitor, record.initProcess].compactMap { $0?.pid }.filter(RuntimeHarness.processExists)
        }

        /// The container's process died by a signal before printing, or the guest console
        /// (which a failed start prints) shows a segfault or init's death: the host's flaw,
        /// not the runtime's. Any other failure is not retried.
        static func hitStalePageFlaw(_ result: Command.Result) -> Bool {
            guard result.stdout.isEmpty, result.status != 0 else { return false }
            return result.status >= 128 || result.stderr.contains("segfault at") || result.stderr.contains("Attempted to kill init")
        }

        /// The container's mounts still in the host's mount table: none may outlive delete.
        func mountsLeft(_ harness: RuntimeHarness) -> [String] {
            MountTable.mountPoints(under: harness.root) ?? ["(the mount table cannot be read)"]
        }

        /// A pod in one VM: an app container of sandbox vm2 (CRI's annotations, the pause's
        /// IPC and UTS namespaces named by its pid, the pod's network namespace) runs in
        /// vm2's VM with a rootfs of its own, bound into the running share: the same boot id
        /// and hostname, no monitor of its own; its delete leaves the sandbox running and
        /// its binds gone. Shell builtins only, one guest process per try.
        func podMemberRunsInTheSandboxVM(_ harness: RuntimeHarness, sandbox: ContainerRecord, pidFile: String, network: VethNamespace?) throws {
            let pausePid = try #require(Int32(try String(contentsOfFile: pidFile, encoding: .utf8)))
            let report = "read b < /proc/sys/kernel/random/boot_id; echo \"boot:$b\"; read h < /proc/sys/kernel/hostname; echo \"host:$h\""
            let appBundle = try harness.makeBundle(["sh", "-c", report + "; read m < /app-marker; echo \"marker:$m\""]) { spec in
                spec["annotations"] = ["io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "vm2"]
                var linux = spec["linux"] as? [String: Any] ?? [:]
                var namespaces = (linux["namespaces"] as? [[String: Any]] ?? []).filter { !["ipc", "uts", "network"].contains($0["type"] as? String) }
                namespaces += [["type": "ipc", "path": "/proc/\(pausePid)/ns/ipc"], ["type": "uts", "path": "/proc/\(pausePid)/ns/uts"]]
                if let network { namespaces.append(["type": "network", "path": network.path]) }
                linux["namespaces"] = namespaces
                spec["linux"] = linux
                spec["hostname"] = nil
            }
            try "the app's own rootfs\n".write(toFile: appBundle + "/rootfs/app-marker", atomically: true, encoding: .utf8)
            var sandboxView = try harness.run(["exec", "vm2", "sh", "-c", report], timeout: 300)
            for _ in 0..<2 where Self.hitStalePageFlaw(sandboxView) { sandboxView = try harness.run(["exec", "vm2", "sh", "-c", report], timeout: 300) }
            var app = try harness.run(["run", "--bundle", appBundle, "app1"], timeout: 300)
            for attempt in 2...3 where Self.hitStalePageFlaw(app) {
                // The host's stale-page flaw on the container's one fresh process: again.
                print("RuntimeLinuxTests: pod member exited \(app.status) with the flaw's signature (attempt \(attempt))")
                _ = try? harness.run(["delete", "-f", "app1"])
                app = try harness.run(["run", "--bundle", appBundle, "app1"], timeout: 300)
            }
            #expect(app.status == 0, "status \(app.status)\n\(app.stdout)\n\(app.stderr)")
            let bootLine = sandboxView.stdout.split(separator: "\n").first { $0.hasPrefix("boot:") }
            #expect(bootLine != nil && app.stdout.contains(String(bootLine ?? "?")), "one VM: \(app.stdout) vs \(sandboxView.stdout)")
            #expect(app.stdout.contains("host:kata\n") && sandboxView.stdout.contains("host:kata\n"), "the pause's UTS namespace: \(app.stdout)")
            #expect(app.stdout.contains("marker:the app's own rootfs"), "\(app.stdout)")
            #expect(leftovers(harness, "app1").isEmpty)
            let binds = (MountTable.mountPoints(under: sandbox.stateDir) ?? []).filter { $0.contains("/app1/") }
            #expect(binds.isEmpty, "the member's binds outlived its delete: \(binds)")
            // One monitor, one VM, for the whole pod.
            let monitors = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { pid in
                let argv = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline").map { String(decoding: $0, as: UTF8.self) } ?? ""
                return argv.contains("sandbox-monitor") && argv.contains(harness.root)
            }
            #expect(monitors.count == 1, "monitors of this root: \(monitors)")
            #expect(try harness.run(["state", "vm2"]).stdout.contains("\"running\""), "the sandbox runs on")
        }

        /// The block path (`shared_fs = "none"`): the rootfs as an ext4 copy on virtio-blk.
        @Test(.timeLimit(.minutes(20))) func runPrintsTheOutputAndExitCode() throws {
            let harness = try harness(hypervisorKeys: "shared_fs = \"none\"")
            let bundle = try harness.makeBundle(["sh", "-c", "echo hello from the microVM; read line < /etc/group; echo \"group:$line\"; exit 3"])
            var result = try harness.run(["run", "--bundle", bundle, "vm1"], timeout: 900)
            if Self.hitStalePageFlaw(result) {
                // The PVM host's stale-page flaw on freshly exec'd guest processes
                // (shared/guest-kernel/README.md) killed the container or the agent. One retry.
                print("RuntimeLinuxTests: run exited \(result.status) with the stale-page flaw's signature; running once more")
                _ = try? harness.run(["delete", "-f", "vm1"])
                result = try harness.run(["run", "--bundle", bundle, "vm1"], timeout: 900)
            }
            #expect(result.stdout.contains("hello from the microVM"), "stdout: \(result.stdout)\nstderr: \(result.stderr)")
            #expect(result.status == 3, "status \(result.status): \(result.stderr)")
            #expect(result.stdout.contains("group:root:x:0:"), "the rootfs's /etc/group: \(result.stdout)")
            print("kata-runtime run in a microVM (rootfs on virtio-blk): \(String(format: "%.1f", result.elapsed)) s")
            #expect(leftovers(harness, "vm1").isEmpty)
            #expect(mountsLeft(harness).isEmpty, "\(mountsLeft(harness))")
            #expect(FileManager.default.fileExists(atPath: bundle + "/rootfs/etc/group"), "the bundle's rootfs must survive delete")
        }

        /// create/start/exec/kill/delete in one boot, checking on the way: the rootfs and
        /// directory volumes over virtio-fs (live both ways, a read-only volume refused), the container's
        /// network (a veth in its namespace, carried to a guest interface of the same name,
        /// address and MAC through a tap and tc redirects: TCP to a host peer over IPv4 and IPv6), a read-only rootfs whose mount points did not
        /// exist in the bundle, the hostname, and that delete leaves nothing.
        @Test(.timeLimit(.minutes(20))) func createStartExecKillDeleteLeavesNothing() throws {
            let harness = try harness()
            let network = try VethNamespace(subnet: "10.213.\(Int.random(in: 1...250))",
                                            subnet6: "fd42:\(String(UInt16.random(in: 1...0xfffe), radix: 16)):\(String(UInt16.random(in: 1...0xfffe), radix: 16)):1")
            if network == nil { Issue.record("cannot create a network namespace here") }
            defer { network?.remove() }
            let peer = try network.map { try TCPReplyServer(address: $0.hostAddress, port: 7777, reply: "pong-from-host") }
            let peer6 = try network.map { try TCPReplyServer(address: $0.hostAddress6 ?? "", port: 7778, reply: "pong6-from-host") }
            defer { peer?.stop(); peer6?.stop() }
            // Two directory volumes over the sandbox's virtio-fs share: one read-write
            // (read and written by the guest), one read-only (which the guest cannot change).
            let volume = harness.directory + "/volume-rw", readOnlyVolume = harness.directory + "/volume-ro"
            for directory in [volume, readOnlyVolume] { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
            try "from-the-host\n".write(toFile: volume + "/in.txt", atomically: true, encoding: .utf8)
            try "kept\n".write(toFile: readOnlyVolume + "/keep.txt", atomically: true, encoding: .utf8)
            let bundle = try harness.makeBundle(["sleep", "1000"]) { spec in
                var mounts = spec["mounts"] as? [[String: Any]] ?? []
                mounts.append(["destination": "/data", "type": "bind", "source": volume, "options": ["rbind", "rw"]])
                mounts.append(["destination": "/config", "type": "bind", "source": readOnlyVolume, "options": ["bind", "ro"]])
                spec["mounts"] = mounts
                guard let network, var linux = spec["linux"] as? [String: Any] else { return }
                var namespaces = (linux["namespaces"] as? [[String: Any]] ?? []).filter { $0["type"] as? String != "network" }
                namespaces.append(["type": "network", "path": network.path])
                linux["namespaces"] = namespaces
                spec["linux"] = linux
            }
            // runc's default spec: a read-only rootfs. Its mount points are made by the agent.
            for dir in ["dev", "proc", "sys"] { try FileManager.default.removeItem(atPath: bundle + "/rootfs/" + dir) }
            let pidFile = harness.directory + "/vm.pid"
            let create = try harness.run(["create", "--bundle", bundle, "--pid-file", pidFile, "vm2"], timeout: 900)
            #expect(create.status == 0, "\(create.stderr)")
            guard create.status == 0 else {
                _ = try? harness.run(["delete", "-f", "vm2"])
                return
            }
            let record = try StateStore(root: harness.root).load("vm2")
            // The default: the rootfs is the bundle's directory over virtio-fs, no image.
            #expect(record.rootfsDelivery == .virtioFs && !FileManager.default.fileExists(atPath: record.rootfsImagePath))
            #expect(record.virtiofsd.map(\.isAlive) == true, "the sandbox's virtiofsd")
            // Live both ways: the mount points the agent made are in the bundle now, and a
            // file the host writes after create is read by the container below.
            for dir in ["dev", "proc", "sys"] {
                #expect(FileManager.default.fileExists(atPath: bundle + "/rootfs/" + dir), "the agent's /\(dir), made through virtio-fs")
            }
            try "written-after-create\n".write(toFile: bundle + "/rootfs/etc/motd", atomically: true, encoding: .utf8)
            let console = (try? String(contentsOfFile: record.consoleLogPath, encoding: .utf8)) ?? ""
            #expect(console.contains("Linux version"), "console.log: \(console.suffix(2000))")
            #expect(try harness.run(["start", "vm2"], timeout: 120).status == 0)
            // pause/resume: the guest's cgroup2 freezer, through the agent.
            let pause = try harness.run(["pause", "vm2"], timeout: 120)
            #expect(pause.status == 0, "\(pause.stderr)")
            #expect(try harness.run(["state", "vm2"]).stdout.contains("\"paused\""))
            let resume = try harness.run(["resume", "vm2"], timeout: 120)
            #expect(resume.status == 0, "\(resume.stderr)")
            // Each step that runs a program of its own reports a death by signal, so that a
            // step killed by the host's flaw (below) is told apart from one that failed.
            let signalled = "; s=$?; [ $s -lt 128 ] || echo step-died-by-signal-$s; }"
            // The volumes with shell builtins only: no new process to meet the host's flaw.
            var script = "echo exec in the microVM; read line < /etc/motd; echo \"rootfs-read:$line\"; "
                + "read line < /data/in.txt; echo \"volume-read:$line\"; echo from-the-guest > /data/out.txt; "
                + "{ echo changed > /config/keep.txt; } 2>/dev/null && echo read-only-volume-written || echo read-only-volume-refused; "
                + "hostname; { busybox touch /written 2>/dev/null || echo rootfs-read-only; }; { ls -d /proc/self /sys/kernel\(signalled)"
            if let network {
                script += "; { busybox ip addr show \(network.containerEnd); busybox ip -6 route show\(signalled); "
                    + "echo ping-from-guest | busybox nc -w 60 \(network.hostAddress) 7777; "
                    + "echo ping6-from-guest | busybox nc -w 60 \(network.hostAddress6 ?? "") 7778"
            }
            var exec = try harness.run(["exec", "vm2", "sh", "-c", script], timeout: 300)
            for attempt in 2...3 where exec.status != 0 || exec.stdout.contains("step-died-by-signal") {
                // A freshly exec'd guest process can die on a stale page on these PVM hosts
                // (shared/guest-kernel/README.md), sometimes twice in a row in one boot: seen
                // in full CI runs as the whole exec dying with no output, and as `ip` alone
                // dying (SIGSEGV) inside an exec that went on. A pause, then again; a step
                // that fails without a signal fails the test at once.
                print("RuntimeLinuxTests: exec exited with \(exec.status), stdout \(exec.stdout.utf8.count) bytes (\(exec.stdout.split(separator: "\n").filter { $0.hasPrefix("step-died") })), stderr: \(exec.stderr); attempt \(attempt)")
                sleep(5)
                exec = try harness.run(["exec", "vm2", "sh", "-c", script], timeout: 300)
            }
            #expect(exec.status == 0 && exec.stdout.contains("exec in the microVM"), "status \(exec.status)\n\(exec.stdout)\n\(exec.stderr)")
            #expect(exec.stdout.contains("kata"))  // the spec's hostname
            #expect(exec.stdout.contains("volume-read:from-the-host") && exec.stdout.contains("read-only-volume-refused"), "\(exec.stdout)")
            #expect(exec.stdout.contains("rootfs-read:written-after-create"), "a host write to the rootfs, seen without a remount: \(exec.stdout)")
            #expect((try? String(contentsOfFile: volume + "/out.txt", encoding: .utf8)) == "from-the-guest\n")
            #expect(exec.stdout.contains("rootfs-read-only") && exec.stdout.contains("/sys/kernel"), "\(exec.stdout)")
            if let network, let peer {
                #expect(exec.stdout.contains("inet \(network.containerAddress)/24"), "\(exec.stdout)")
                #expect(exec.stdout.contains(network.containerMAC), "guest eth0 should carry the veth's MAC \(network.containerMAC): \(exec.stdout)")
                #expect(exec.stdout.contains("pong-from-host"), "\(exec.stdout)\n\(exec.stderr)")
                #expect(peer.lines.contains("ping-from-guest"), "\(peer.lines)")
                // IPv6 too: the veth's address and its route, and TCP to the host over them.
                #expect(exec.stdout.contains("inet6 \(network.containerAddress6 ?? "")/64"), "\(exec.stdout)")
                #expect(exec.stdout.contains("\(VethNamespace.routed6) via \(network.hostAddress6 ?? "") dev \(network.containerEnd)"), "\(exec.stdout)")
                #expect(exec.stdout.contains("pong6-from-host"), "\(exec.stdout)\n\(exec.stderr)")
                #expect(peer6?.lines.contains("ping6-from-guest") == true, "\(peer6?.lines ?? [])")
                #expect(network.links.contains("tap0_kata"))
            }
            try podMemberRunsInTheSandboxVM(harness, sandbox: record, pidFile: pidFile, network: network)
            #expect(try harness.run(["kill", "vm2", "9"], timeout: 120).status == 0)
            let deadline = Date().addingTimeInterval(120)
            var status = ""
            while Date() < deadline {
                let state = try harness.run(["state", "vm2"])
                status = (try? JSONSerialization.jsonObject(with: Data(state.stdout.utf8)) as? [String: Any])?["status"] as? String ?? ""
                if status == "stopped" { break }
                usleep(200_000)
            }
            #expect(status == "stopped")
            let delete = try harness.run(["delete", "vm2"], timeout: 120)
            #expect(delete.status == 0, "\(delete.stderr)")
            #expect(leftovers(harness, "vm2").isEmpty)
            #expect(vmProcessesAlive(record).isEmpty)
            #expect(!FileManager.default.fileExists(atPath: record.vsockSocketPath))
            #expect(record.virtiofsd.map(\.isAlive) == false)
            #expect(mountsLeft(harness).isEmpty, "\(mountsLeft(harness))")
            // The volumes keep their data: delete unmounts them, it never removes through them.
            #expect((try? String(contentsOfFile: volume + "/in.txt", encoding: .utf8)) == "from-the-host\n")
            #expect((try? String(contentsOfFile: volume + "/out.txt", encoding: .utf8)) == "from-the-guest\n")
            #expect((try? String(contentsOfFile: readOnlyVolume + "/keep.txt", encoding: .utf8)) == "kept\n")
            #expect(FileManager.default.fileExists(atPath: bundle + "/rootfs/bin/busybox"), "the bundle's rootfs survives delete")
            if let network {
                #expect(!network.links.contains("tap0_kata"), "\(network.links)")
                #expect(network.links.contains(network.containerEnd))  // the veth stays
            }
        }
    }
}
