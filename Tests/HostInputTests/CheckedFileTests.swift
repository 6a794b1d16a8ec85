import Glibc
import HostInput
import Testing

@Suite struct CheckedFileTests {
    func temporaryDirectory() -> String {
        var template = Array("/tmp/checked-file-XXXXXX".utf8CString)
        return String(cString: mkdtemp(&template)!)
    }

    func write(_ bytes: [UInt8], to path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    @Test func readsARegularFileWithinItsLimit() throws {
        let dir = temporaryDirectory()
        write(Array("hello".utf8), to: dir + "/f")
        #expect(try CheckedFile.read(dir + "/f", role: "spec", limit: 5) == Array("hello".utf8))
        #expect(throws: HostInputError.tooLarge(role: "spec", path: dir + "/f", size: 5, limit: 4)) {
            try CheckedFile.read(dir + "/f", role: "spec", limit: 4)
        }
    }

    @Test func refusesAFifoWithoutBlocking() throws {
        let dir = temporaryDirectory()
        #expect(mkfifo(dir + "/fifo", 0o600) == 0)
        // No writer: a blocking open or read would wait forever.
        #expect(throws: HostInputError.notARegularFile(role: "kernel", path: dir + "/fifo", kind: "a FIFO")) {
            try CheckedFile.read(dir + "/fifo", role: "kernel", limit: 1 << 20)
        }
    }

    @Test func refusesDevicesAndDirectories() {
        #expect(throws: HostInputError.notARegularFile(role: "initrd", path: "/dev/zero", kind: "a character device")) {
            try CheckedFile.read("/dev/zero", role: "initrd", limit: 1 << 20)
        }
        #expect(throws: HostInputError.notARegularFile(role: "config", path: "/tmp", kind: "a directory")) {
            try CheckedFile.check("/tmp", role: "config", limit: 1 << 20)
        }
        let error = HostInputError.notARegularFile(role: "kernel", path: "/tmp", kind: "a directory")
        #expect(error.description == "kernel '/tmp' is not a regular file (it is a directory)")
    }

    @Test func refusesEmptyWhenAskedAndNulInThePath() throws {
        let dir = temporaryDirectory()
        write([], to: dir + "/empty")
        #expect(try CheckedFile.read(dir + "/empty", role: "spec", limit: 10).isEmpty)
        #expect(throws: HostInputError.empty(role: "kernel", path: dir + "/empty")) {
            try CheckedFile.read(dir + "/empty", role: "kernel", limit: 10, allowEmpty: false)
        }
        #expect(throws: HostInputError.nulCharacter(field: "kernel")) {
            try CheckedFile.read(dir + "/empty\u{0}.evil", role: "kernel", limit: 10)
        }
    }
}
