import CLinux
import Devices
import Glibc
import Synchronization
import VMM

/// Feeds the host's stdin to the guest's serial port when it is a terminal or a pipe,
/// never reading more than the UART's FIFO can take (nothing typed is lost; a full FIFO
/// pauses stdin until the guest reads). A terminal is put in raw mode, as Firecracker
/// does, so keys such as Ctrl-C reach the guest; it is restored on `close()`.
public final class ConsoleInput: @unchecked Sendable {  // `paused` is atomic; `savedTerminal` is set in init, `closed` only by the owner's close() and deinit
    private let fd: Int32
    private let serial: Serial8250
    private let loop: EventLoop
    private var savedTerminal: termios?
    private let paused = Atomic<Bool>(false)
    private var closed = false

    /// Returns nil when `fd` is neither a terminal nor a pipe (e.g. /dev/null).
    public init?(fd: Int32 = STDIN_FILENO, serial: Serial8250, loop: EventLoop) throws {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        let isTerminal = isatty(fd) == 1
        let isPipe = info.st_mode & S_IFMT == S_IFIFO || info.st_mode & S_IFMT == S_IFSOCK
        guard isTerminal || isPipe else { return nil }
        self.fd = fd
        self.serial = serial
        self.loop = loop
        if isTerminal {
            var saved = termios()
            if clinux_tcgetattr(fd, &saved) == 0 {
                var raw = saved
                clinux_cfmakeraw(&raw)
                if clinux_tcsetattr(fd, &raw) == 0 { savedTerminal = saved }
            }
        }
        serial.onReceiveSpace = { [weak self] in self?.resume() }
        try loop.add(fd: fd, events: EventLoop.readable) { [weak self] events in self?.readable(events) }
    }

    private func readable(_ events: UInt32) {
        var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        let space = min(serial.receiveSpace, MemoryLayout.size(ofValue: buffer))
        if space == 0 {
            pause()
            return
        }
        let n = withUnsafeMutableBytes(of: &buffer) { raw in Glibc.read(fd, raw.baseAddress!, space) }
        if n > 0 {
            withUnsafeBytes(of: &buffer) { raw in _ = serial.enqueueInput(UnsafeRawBufferPointer(rebasing: raw[0..<n])) }
        } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
            loop.remove(fd: fd)  // end of input: the guest just sees no more bytes
        }
    }

    private func pause() {
        guard paused.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        try? loop.modify(fd: fd, events: 0)
    }

    private func resume() {
        guard paused.compareExchange(expected: true, desired: false, ordering: .acquiringAndReleasing).exchanged else { return }
        try? loop.modify(fd: fd, events: EventLoop.readable)
    }

    /// Stops reading and restores the terminal.
    public func close() {
        guard !closed else { return }
        closed = true
        loop.remove(fd: fd)
        if var saved = savedTerminal { _ = clinux_tcsetattr(fd, &saved) }
    }

    deinit { close() }
}
