import Glibc
import Testing
@testable import Devices
@testable import VMM

/// The console log cap, through the UART as a guest drives it: a guest that prints more
/// than the cap leaves at most the cap in the file and the cap in `<file>.1`.
@Suite struct SerialConsoleLogTests {
    func temporaryDirectory() -> String {
        var template = Array("/tmp/console-log-XXXXXX".utf8CString)
        return String(cString: mkdtemp(&template)!)
    }

    func contents(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { return bytes }
            bytes += buffer[0..<n]
        }
    }

    func mode(_ path: String) -> mode_t {
        var info = stat()
        stat(path, &info)
        return info.st_mode & 0o777
    }

    func transmit(_ text: String, through serial: Serial8250) {
        for byte in text.utf8 { [byte].withUnsafeBytes { serial.write(offset: 0, data: $0) } }
    }

    @Test func aGuestPrintingPastTheCapRotatesOnce() throws {
        let dir = temporaryDirectory()
        let path = dir + "/console.log"
        let serial = Serial8250(output: try ConsoleLog(path: path, maxBytes: 1000), interrupt: try EventFd())
        // 3500 bytes: two rotations; the oldest 1000 are gone, the newest are kept.
        let lines = (0..<350).map { n in "line " + String(repeating: "0", count: 4 - String(n).count) + String(n) + "\n" }
        transmit(lines.joined(), through: serial)
        let current = try #require(contents(path))
        let previous = try #require(contents(path + ".1"))
        #expect(current.count == 500)
        #expect(previous.count == 1000)
        #expect(String(decoding: current, as: UTF8.self) == lines[300...].joined())
        #expect(String(decoding: previous, as: UTF8.self) == lines[200..<300].joined())
        #expect(mode(path) == 0o600)
        #expect(mode(path + ".1") == 0o600)
        #expect(contents(path + ".2") == nil)
    }

    @Test func zeroMeansNoCapAndAnExistingFileBecomesPrivate() throws {
        let dir = temporaryDirectory()
        let path = dir + "/console.log"
        close(open(path, O_WRONLY | O_CREAT, 0o644))
        chmod(path, 0o644)
        let serial = Serial8250(output: try ConsoleLog(path: path, maxBytes: 0), interrupt: try EventFd())
        transmit(String(repeating: "x", count: 5000), through: serial)
        #expect(contents(path)?.count == 5000)
        #expect(contents(path + ".1") == nil)
        #expect(mode(path) == 0o600)
    }

    @Test func aFifoIsNotRotated() throws {
        let dir = temporaryDirectory()
        let path = dir + "/fifo"
        #expect(mkfifo(path, 0o600) == 0)
        let reader = open(path, O_RDONLY | O_NONBLOCK)
        defer { close(reader) }
        let log = try ConsoleLog(path: path, maxBytes: 10)
        #expect(log.rotatingPath == nil)
        let serial = Serial8250(output: log, interrupt: try EventFd())
        transmit(String(repeating: "y", count: 100), through: serial)
        var buffer = [UInt8](repeating: 0, count: 200)
        #expect(read(reader, &buffer, buffer.count) == 100)
        #expect(contents(path + ".1") == nil)
    }
}
