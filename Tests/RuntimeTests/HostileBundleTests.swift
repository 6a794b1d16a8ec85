import Foundation
import OCI
@testable import Runtime
import TestSupport
import Testing

/// Bundles and configurations a careless or hostile caller hands `kata-runtime`: a
/// config.json with a duplicate key or a NUL in a path, a FIFO where a file is read. Each is
/// refused with the file and the field named, at once (never a hang), leaving nothing behind.
@Suite struct HostileBundleTests {
    @Test func createRefusesDuplicateKeysNulPathsAndFifos() throws {
        let harness = try RuntimeHarness()
        func create(_ bundle: String, _ id: String) throws -> Command.Result {
            let result = try harness.run(["create", "--bundle", bundle, id], timeout: 30)
            #expect(harness.leftovers(id).isEmpty)
            return result
        }

        let duplicate = try harness.makeBundle(["true"])
        var text = try String(contentsOfFile: duplicate + "/config.json", encoding: .utf8)
        // The second "ociVersion" is the one JSONDecoder would silently keep.
        text = "{\"ociVersion\":\"0.1\"," + text.dropFirst()
        try text.write(toFile: duplicate + "/config.json", atomically: true, encoding: .utf8)
        var result = try create(duplicate, "dup")
        #expect(result.status == 1 && result.stderr.contains("config.json: ociVersion: duplicate key"), "\(result.stderr)")

        let nul = try harness.makeBundle(["true"]) { spec in
            spec["mounts"] = [["destination": "/data", "type": "bind", "source": "/etc/hostname\u{0}/../../shadow", "options": ["bind"]]]
        }
        result = try create(nul, "nul")
        #expect(result.status == 1 && result.stderr.contains("config.json: mounts[0].source: must not contain a NUL character"), "\(result.stderr)")

        let fifo = try harness.makeBundle(["true"])
        try FileManager.default.removeItem(atPath: fifo + "/config.json")
        #expect(mkfifo(fifo + "/config.json", 0o600) == 0)
        result = try create(fifo, "fifo")
        #expect(result.status == 1 && result.stderr.contains("config.json '\(fifo)/config.json' is not a regular file (it is a FIFO)"), "\(result.stderr)")
    }

    @Test func oversizedOrDuplicateDocumentsAreRefused() throws {
        let dir = Fixtures.scratch.appendingPathComponent("hostile-bundle-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir + "/rootfs", withIntermediateDirectories: true)
        let padding = String(repeating: " ", count: OCIBundle.maxConfigSize)
        try (BundleTests.minimal + padding).write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        #expect(throws: OCIBundle.LoadError.self) { try OCIBundle(path: dir) }
        do { _ = try OCIBundle(path: dir) } catch { #expect("\(error)".contains("is too large"), "\(error)") }

        let process = #"{"args":["sh"],"cwd":"/","cwd":"/root","user":{"uid":0,"gid":0}}"#
        do {
            _ = try OCIBundle.decode(Spec.Process.self, from: Data(process.utf8), file: "process.json")
            Issue.record("accepted")
        } catch { #expect("\(error)" == "process.json: cwd: duplicate key (each key may appear once per object)") }
    }

    @Test func configurationFileMustBeARegularFileWithoutNul() throws {
        let harness = try RuntimeHarness()
        try FileManager.default.removeItem(atPath: harness.configPath)
        #expect(mkfifo(harness.configPath, 0o600) == 0)
        let result = try harness.run(["env"], timeout: 30)
        #expect(result.status == 1 && result.stderr.contains("is not a regular file (it is a FIFO)"), "\(result.stderr)")
        // TOMLKit would hand "/boot/vmlinux" over: the NUL is refused before it parses.
        #expect(throws: RuntimeConfiguration.ConfigError("c.toml: line 2: a NUL character (a path would be cut short at it)")) {
            try RuntimeConfiguration.parse("[hypervisor.kata]\nkernel = \"/boot/vmlinux\\u0000.evil\"\n", file: "c.toml")
        }
        #expect(try RuntimeConfiguration.parse("[hypervisor.kata]\nkernel_params = \"a\\\\u0000\"\n").hypervisor.kernelParams == "a\\u0000")
        #expect(RuntimeConfiguration().hypervisor.consoleLogMaxBytes == 4 << 20)
        #expect(try RuntimeConfiguration.parse("[hypervisor.kata]\nconsole_log_max_bytes = 0\n").hypervisor.consoleLogMaxBytes == 0)
        #expect(throws: RuntimeConfiguration.ConfigError.self) {
            try RuntimeConfiguration.parse("[hypervisor.kata]\nconsole_log_max_bytes = -1\n")
        }
    }
}
