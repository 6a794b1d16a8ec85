import Testing
@testable import Machine

@Suite struct DiskConfigTests {
    @Test func parsesEveryOption() throws {
        #expect(try DiskConfig.parse("path=/tmp/a.img") == DiskConfig(path: "/tmp/a.img"))
        let full = try DiskConfig.parse("path=/dev/loop0,readonly=on,id=root,engine=aio,direct=on")
        #expect(full == DiskConfig(path: "/dev/loop0", readOnly: true, id: "root", engine: .aio, direct: true))
        #expect(try DiskConfig.parse("ro=off,path=x").readOnly == false)
    }

    @Test(arguments: [
        ("readonly=on", "path= is required"),
        ("path=", "empty path"),
        ("path=a,color=red", "unknown key 'color'"),
        ("path=a,readonly=maybe", "readonly must be on or off"),
        ("path=a,engine=uring", "engine must be sync or aio"),
        ("path=a,id=123456789012345678901", "id must be 1 to 20 bytes"),
        ("path=a,,", "is not key=value"),
        ("just-a-path", "is not key=value"),
    ])
    func namesTheMistake(spec: String, fragment: String) {
        do {
            _ = try DiskConfig.parse(spec)
            Issue.record("accepted '\(spec)'")
        } catch {
            #expect("\(error)".contains(fragment), "\(error)")
        }
    }

    @Test func configValidation() throws {
        var config = VmConfig(kernelPath: "k")
        config.disks = [DiskConfig(path: "a", id: "x"), DiskConfig(path: "b", id: "x")]
        #expect(throws: VmConfig.ValidationError.duplicateDiskId("x")) { try config.validate() }
        config.disks = (0..<19).map { DiskConfig(path: "d\($0)") }
        config.rng = true
        #expect(throws: VmConfig.ValidationError.tooManyDevices(20)) { try config.validate() }
        config.rng = false
        try config.validate()
        #expect(config.diskIds.prefix(2) == ["disk0", "disk1"])
    }
}

@Suite struct NetAndVsockConfigTests {
    @Test func netOptions() throws {
        #expect(try NetConfig.parse("tap=tap0") == NetConfig(tap: "tap0"))
        let full = try NetConfig.parse("tap=tap1,mac=02:AA:bb:cc:dd:01,id=eth0")
        #expect(full == NetConfig(tap: "tap1", mac: [0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x01], id: "eth0"))
        for (spec, fragment) in [("mac=02:00:00:00:00:01", "tap= is required"),
                                 ("tap=averyveryverylongname", "1 to 15 characters"),
                                 ("tap=t,mac=02:00:00:00:00", "mac must look like"),
                                 ("tap=t,mac=01:00:5e:00:00:01", "multicast"),
                                 ("tap=t,speed=10", "unknown key 'speed'")] {
            #expect(throws: NetConfig.ParseError.self, "\(spec)") { try NetConfig.parse(spec) }
            do { _ = try NetConfig.parse(spec) } catch { #expect("\(error)".contains(fragment), "\(error)") }
        }
    }

    @Test func vsockOptions() throws {
        #expect(try VsockConfig.parse("cid=3,uds=/tmp/v.sock") == VsockConfig(guestCid: 3, udsPath: "/tmp/v.sock"))
        for (spec, fragment) in [("uds=/tmp/x", "cid= is required"), ("cid=3", "uds= is required"),
                                 ("cid=2,uds=/x", "cid must be"), ("cid=abc,uds=/x", "cid must be"),
                                 ("cid=3,uds=/x,port=1", "unknown key 'port'")] {
            do {
                _ = try VsockConfig.parse(spec)
                Issue.record("accepted \(spec)")
            } catch { #expect("\(error)".contains(fragment), "\(error)") }
        }
        var config = VmConfig(kernelPath: "k")
        config.nets = [NetConfig(tap: "a"), NetConfig(tap: "a")]
        #expect(throws: VmConfig.ValidationError.duplicateTap("a")) { try config.validate() }
    }
}
