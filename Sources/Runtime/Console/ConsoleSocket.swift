import CLinux
import Glibc
import LinuxSupport

/// A pseudo-terminal pair for a container process with `terminal: true`: the master goes
/// to the caller over `--console-socket` (as runc sends it: SCM_RIGHTS with the pty's name
/// as the payload); the runtime keeps the slave side and relays it to the guest's terminal.
public final class PseudoTerminal {
    public private(set) var master: Int32
    public let slave: Int32
    public let name: String

    /// _IOW('T', 0x31, int) and _IOR('T', 0x30, unsigned int): not importable macros.
    static let TIOCSPTLCK: UInt = 0x4004_5431
    static let TIOCGPTN: UInt = 0x8004_5430

    public init() throws {
        let master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard master >= 0 else { throw SystemError("open /dev/ptmx") }
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard ioctl(master, Self.TIOCSPTLCK, &unlock) == 0, ioctl(master, Self.TIOCGPTN, &number) == 0 else {
            let error = SystemError("unlocking the pty")
            close(master)
            throw error
        }
        let name = "/dev/pts/\(number)"
        let slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard slave >= 0 else {
            let error = SystemError("open \(name)")
            close(master)
            throw error
        }
        // Raw mode on the slave: the guest's pty does the line discipline; the host pair
        // only carries bytes.
        var attributes = termios()
        if clinux_tcgetattr(slave, &attributes) == 0 {
            clinux_cfmakeraw(&attributes)
            _ = clinux_tcsetattr(slave, &attributes)
        }
        self.master = master
        self.slave = slave
        self.name = name
    }

    public func setSize(rows: UInt16, columns: UInt16) {
        var size = winsize(ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(master, UInt(TIOCSWINSZ), &size)
    }

    /// Sends the master to the console socket and closes the runtime's copy of it.
    public func sendMaster(to socketPath: String) throws {
        let socket = try UnixSocket.connect(to: socketPath)
        try socket.send(fds: [master], payload: Array(name.utf8))
        close(master)
        master = -1
    }

    deinit {
        if master >= 0 { close(master) }
        close(slave)
    }
}
