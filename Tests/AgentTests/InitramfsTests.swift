import AgentProtocol
import Foundation
import Runtime
import Testing
import TestSupport

/// guest/build-initramfs.sh: a deterministic cpio whose /init is the static agent, and
/// that static agent works (the same binary the guest runs, here on the host).
@Suite struct InitramfsTests {
    @Test(.timeLimit(.minutes(30)))
    func initramfsHoldsAStaticAgentAndIsDeterministic() throws {
        let image = try Fixtures.agentInitramfs()
        let listing = try Command.run("/bin/sh", ["-c", "cpio -t --quiet < '\(image.path)'"])
        let entries = Set(listing.stdout.split(separator: "\n").map(String.init))
        #expect(entries.isSuperset(of: ["init", "dev", "dev/console", "proc", "sys", "run", "tmp"]), "\(entries)")

        let extracted = Fixtures.scratch.appendingPathComponent("extracted-init")
        let extract = try Command.run("/bin/sh", ["-c", "cpio -i --quiet --to-stdout init < '\(image.path)' > '\(extracted.path)'"])
        #expect(extract.status == 0)
        let kind = try Command.run("/usr/bin/file", ["-b", extracted.path])
        #expect(kind.stdout.contains("statically linked") || kind.stdout.contains("static-pie linked"), "\(kind.stdout)")
        let size = (try FileManager.default.attributesOfItem(atPath: extracted.path)[.size] as? Int) ?? 0
        print("MEASURE static kata-agent size (stripped, as /init): \(size) bytes = \(String(format: "%.1f", Double(size) / 1048576)) MiB")

        // The same agent gives the same bytes; --gzip compresses exactly that.
        let script = Fixtures.packageRoot.appendingPathComponent("guest/build-initramfs.sh").path
        let again = Fixtures.scratch.appendingPathComponent("agent-again.cpio")
        let rebuild = try Command.run("/bin/bash", [script, "--agent", Fixtures.staticAgent.path, again.path])
        #expect(rebuild.status == 0, "\(rebuild.stderr)")
        #expect(try Data(contentsOf: again) == Data(contentsOf: image))
        let gz = Fixtures.scratch.appendingPathComponent("agent.cpio.gz")
        #expect(try Command.run("/bin/bash", [script, "--gzip", "--agent", Fixtures.staticAgent.path, gz.path]).status == 0)
        let unzipped = try Command.run("/bin/sh", ["-c", "gzip -dc '\(gz.path)' | cmp - '\(image.path)'"])
        #expect(unzipped.status == 0, "\(unzipped.stdout)\(unzipped.stderr)")

        // The static binary serves and runs a container (FoundationEssentials' JSON
        // decoder, threads and the C child path all linked in statically).
        let agent = try AgentHarness(binary: Fixtures.staticAgent)
        defer { agent.stop() }
        #expect(try agent.client.check().status == .serving)
        let rootfs = try Fixtures.busyboxRootfs()
        try agent.client.run("static", spec: try ContainerFixture.spec(rootfs: rootfs, process: ContainerFixture.process(["echo", "static agent"])))
        #expect(String(decoding: try agent.client.readAll("static"), as: UTF8.self) == "static agent\n")
        #expect(try agent.client.wait("static") == 0)
        try agent.client.remove("static")
        print("MEASURE static kata-agent start on the host (spawn to socket accepting): \(String(format: "%.1f", agent.startSeconds * 1000)) ms")
        if let rss = agent.residentSetKiB() { print("MEASURE static kata-agent RSS after one container: \(rss) KiB") }
    }
}
