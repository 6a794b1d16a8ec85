import Foundation
import TestSupport
import Testing

/// What a hostile or careless caller hands kata-vmm: documents with duplicate keys or NUL
/// characters, FIFOs and oversized files where a file is read, a guest that prints without
/// end. Each is refused with a message naming the field or file, without hanging.
@Suite struct HostInputRefusalTests {
    @Test func apiBodiesWithDuplicateKeysOrNulAreRefused() throws {
        let probe = try Fixtures.probeGuest().path
        let vmm = try VmmProcess()
        let api = try UnixHTTPClient(path: vmm.socket)
        let disk = vmm.path("d.img")
        try Data(count: 4096).write(to: URL(fileURLWithPath: disk))
        typealias Case = ApiValidationTests.Case
        try ApiValidationTests.check([
            Case(method: "PUT", path: "/boot-source", body: #"{"kernel_image_path":"\#(probe)","kernel_image_path":"/etc/passwd"}"#,
                 fault: "request body: kernel_image_path: duplicate key"),
            Case(method: "PUT", path: "/machine-config", body: #"{"vcpu_count":1,"mem_size_mib":64,"mem_size_mib":4096}"#,
                 fault: "mem_size_mib: duplicate key"),
            Case(method: "PUT", path: "/boot-source", body: #"{"kernel_image_path":"\#(probe)\u0000/x"}"#,
                 fault: "request body: kernel_image_path: must not contain a NUL character"),
            Case(method: "PUT", path: "/drives/d1", body: #"{"drive_id":"d1","path_on_host":"\#(disk)\u0000.x","is_root_device":false}"#,
                 fault: "path_on_host: must not contain a NUL character"),
            Case(method: "PUT", path: "/logger", body: #"{"log_path":"/tmp/a\u0000b"}"#, fault: "log_path: must not contain a NUL character"),
        ], api, state: "Not started")
    }

    /// A config file or a kernel that is a FIFO (no writer: a blocking read would wait
    /// forever) or too large is refused at once.
    @Test func fifosAndOversizedFilesAreRefused() throws {
        let probe = try Fixtures.probeGuest().path
        let dir = Fixtures.scratch.appendingPathComponent("hostile-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let fifo = dir + "/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        let run = { (arguments: [String]) in try Command.run(Fixtures.kataVmm.path, arguments, timeout: 30) }

        let config = try run(["--config-file", fifo, "--no-api"])
        #expect(config.status == 1 && config.stderr.contains("config file '\(fifo)' is not a regular file (it is a FIFO)"), "\(config.stderr)")
        let kernel = try run(["--kernel", fifo])
        #expect(kernel.status == 1 && kernel.stderr.contains("kernel '\(fifo)' is not a regular file (it is a FIFO)"), "\(kernel.stderr)")
        let initrd = try run(["--kernel", probe, "--initrd", "/dev/zero"])
        #expect(initrd.status == 1 && initrd.stderr.contains("initrd '/dev/zero' is not a regular file (it is a character device)"), "\(initrd.stderr)")

        let big = dir + "/big.json"
        try Data(("{\"boot-source\": {\"kernel_image_path\": \"\(probe)\"}}" + String(repeating: " ", count: 1 << 20)).utf8)
            .write(to: URL(fileURLWithPath: big))
        let oversized = try run(["--config-file", big, "--no-api"])
        #expect(oversized.status == 1 && oversized.stderr.contains("config file '\(big)' is too large"), "\(oversized.stderr)")
        #expect(oversized.stderr.contains("at most 1048576 accepted"), "\(oversized.stderr)")

        let bootSource = """
            {"boot-source": {"kernel_image_path": "\(fifo)"}}
            """
        let fifoKernel = dir + "/fifo-kernel.json"
        try Data(bootSource.utf8).write(to: URL(fileURLWithPath: fifoKernel))
        let viaConfig = try run(["--config-file", fifoKernel, "--no-api"])
        #expect(viaConfig.status == 1 && viaConfig.stderr.contains("boot-source.kernel_image_path: file '\(fifo)' is not a regular file (it is a FIFO)"),
                "\(viaConfig.stderr)")
    }

    /// The probe prints a few hundred bytes; with a 64-byte cap the console log is rotated,
    /// each file stays within the cap, and the newest output (the end) is kept.
    @Test func consoleLogIsCappedAndRotated() throws {
        let probe = try Fixtures.probeGuest().path
        let dir = Fixtures.scratch.appendingPathComponent("console-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let log = dir + "/console.log"
        let config = dir + "/vm.json"
        try Data("""
            {"boot-source": {"kernel_image_path": "\(probe)", "boot_args": "console=ttyS0 probe.exit=3"},
             "serial": {"serial_out_path": "\(log)", "max_bytes": 64}}
            """.utf8).write(to: URL(fileURLWithPath: config))
        let result = try Command.run(Fixtures.kataVmm.path, ["--config-file", config, "--no-api"], timeout: 60)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(!result.stdout.contains("probe:"), "the console went to the file, not stdout")
        let current = try Data(contentsOf: URL(fileURLWithPath: log))
        let previous = try Data(contentsOf: URL(fileURLWithPath: log + ".1"))
        #expect(current.count <= 64 && previous.count == 64, "\(current.count) \(previous.count)")
        let tail = String(decoding: previous + current, as: UTF8.self)
        #expect(tail.hasSuffix("probe: i8042 reset\n"), "\(tail)")
        let mode = try FileManager.default.attributesOfItem(atPath: log)[.posixPermissions] as? Int
        #expect(mode == 0o600)

        // The flag does the same for --serial file:PATH; 0 lifts the cap.
        let flagLog = dir + "/flag.log"
        let uncapped = try Command.run(Fixtures.kataVmm.path, ["--kernel", probe, "--cmdline", "console=ttyS0 probe.exit=3",
                                                               "--serial", "file:\(flagLog)", "--serial-max-bytes", "0"], timeout: 60)
        #expect(uncapped.status == 2, "\(uncapped.stderr)")
        let whole = try String(contentsOfFile: flagLog, encoding: .utf8)
        #expect(whole.contains("probe: cmdline=") && whole.hasSuffix("probe: i8042 reset\n"), "\(whole)")
        #expect(!FileManager.default.fileExists(atPath: flagLog + ".1"))
        let bad = try Command.run(Fixtures.kataVmm.path, ["--kernel", probe, "--serial-max-bytes=-5"], timeout: 30)
        #expect(bad.status == 64 && bad.stderr.contains("invalid --serial-max-bytes -5"), "\(bad.stderr)")
    }
}
