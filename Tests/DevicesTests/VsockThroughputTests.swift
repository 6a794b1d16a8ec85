import Foundation
import Glibc
import Testing
@testable import Devices
@testable import VMM

/// How fast one stream goes from the simulated guest to a host socket (no assertion on
/// the speed: these machines vary too much).
@Suite struct VsockThroughputTests {
    @Test func guestToHostStream() throws {
        let g = try VsockTestGuest(txSlots: 64)
        let listener = VsockHostListener(g, port: 1)
        let s = g.connect(to: 1)
        #expect(g.pump { s.state == .established })
        let fd = listener.accept(pumping: g)
        #expect(fd >= 0)
        defer { close(fd) }
        let total = 64 << 20
        let chunk = vsockPattern(64 << 10, seed: 5)
        var received = 0
        var sent = 0
        let start = ProcessClock.monotonicNanos()
        var sink = [UInt8](repeating: 0, count: 1 << 20)
        func drain() {
            while true {
                let n = sink.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n <= 0 { break }
                received += n
            }
        }
        while sent < total {
            #expect(g.write(s, chunk, whileWaiting: drain))
            sent += chunk.count
            drain()
        }
        #expect(g.pump(seconds: 20) {
            drain()
            return received == total
        })
        let seconds = Double(ProcessClock.monotonicNanos() - start) / 1e9
        print("vsock guest -> host: \(total >> 20) MiB in \(String(format: "%.3f", seconds)) s = \(String(format: "%.1f", Double(total) / 1048576 / seconds)) MiB/s")
        #expect(received == total)
    }
}
