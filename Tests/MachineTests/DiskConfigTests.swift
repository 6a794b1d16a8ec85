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
