import Foundation
import Glibc
import Synchronization
import TestSupport
import Testing
@testable import Devices
@testable import VMM

/// Checksummed, sequence-numbered frames of random sizes both ways at once through the
/// real muxer, with the event loop on its own thread (as in the VMM), busy host threads,
/// a tiny send buffer on the device's host socket (short writes and EAGAIN all the time),
/// a small guest buffer (credit stalls) and rx buffers of odd layouts. Any byte lost,
/// duplicated or reordered between a writer and its reader fails a frame check, which
/// says where. (The question: can the guest -> host path corrupt an agent response?)
@Suite struct VsockStressTests {
    /// The host client's side, on its own thread: sends `frames` frames and checks what
    /// the guest sends back, with short non-blocking writes and reads in random sizes.
    final class HostPeer: Sendable {
        final class Flag: Sendable {
            private let value = Atomic<Bool>(true)
            var isSet: Bool { value.load(ordering: .relaxed) }
            func clear() { value.store(false, ordering: .relaxed) }
        }

        let fd: Int32
        let frames: Int
        let expectFromGuest: Int
        private let result = Mutex<(checker: VsockFrameChecker, sent: Int, done: Bool)>((VsockFrameChecker(fromGuest: true), 0, false))
        private let stop = Atomic<Bool>(false)

        init(fd: Int32, frames: Int, expectFromGuest: Int) {
            self.fd = fd
            self.frames = frames
            self.expectFromGuest = expectFromGuest
        }

        var checker: VsockFrameChecker { result.withLock { $0.checker } }
        var finished: Bool { result.withLock { $0.done } }
        func cancel() { stop.store(true, ordering: .relaxed) }

        func run() {
            var rng = SystemRandomNumberGenerator()
            var sizes = VsockFrame.Sizes(seed: 77)
            var out: [UInt8] = []
            var outOffset = 0
            var seq: UInt32 = 0
            var checker = VsockFrameChecker(fromGuest: true)
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while !stop.load(ordering: .relaxed) {
                if outOffset == out.count, Int(seq) < frames {
                    out = VsockFrame.encode(seq: seq, length: sizes.next(), fromGuest: false)
                    outOffset = 0
                    seq += 1
                }
                if outOffset < out.count {
                    let n = VsockHostSocket.writeSome(fd, out[outOffset..<min(out.count, outOffset + Int.random(in: 1...20_000, using: &rng))])
                    if n < 0 { break }
                    outOffset += n
                }
                let want = Int.random(in: 1...chunk.count, using: &rng)
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, want, Int32(MSG_DONTWAIT)) }
                if n > 0 { checker.feed(chunk[..<n]) }
                if n == 0 || checker.fault != nil { break }
                if n < 0 && outOffset == out.count { usleep(UInt32.random(in: 0...200, using: &rng)) }
                let sentAll = Int(seq) == frames && outOffset == out.count
                result.withLock { $0 = (checker, Int(seq), false) }
                if sentAll && checker.frames == expectFromGuest { break }
            }
            result.withLock { $0 = (checker, Int(seq), true) }
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func framesBothWaysUnderLoadArriveIntact() throws {
        let g = try VsockTestGuest(rxLayouts: [.single(4096 + 44), .split(1000), .scattered(3000), .single(100),
                                              .split(65536), .single(44 + 17)],
                                   txSlots: 64)
        g.defaultBufAlloc = 48 << 10
        let c = try #require(VsockDeviceTests.hostConnect(g, port: 9000), "no OK line")
        defer { close(c.fd) }
        for fd in g.device.muxer.openDescriptors.dropFirst(2) {
            var size: Int32 = 2048
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        try g.loop.start()
        g.loopThreaded = true
        defer { g.loop.stop() }

        // Host load: busy threads competing with the event loop and both peers.
        let busy = HostPeer.Flag()
        let burners = (0..<2).map { _ in
            Thread {
                var x: UInt64 = 1
                while busy.isSet { x = x &* 6364136223846793005 &+ 1 }
                _ = x
            }
        }
        burners.forEach { $0.start() }
        defer { busy.clear() }

        let framesEach = 600
        let host = HostPeer(fd: c.fd, frames: framesEach, expectFromGuest: framesEach)
        let hostThread = Thread { host.run() }
        hostThread.start()
        defer { host.cancel() }

        let start = Date()
        var fromHost = VsockFrameChecker(fromGuest: false)
        var taken = 0
        var sizes = VsockFrame.Sizes(seed: 5)
        func drainGuest() {
            if c.socket.received.count > taken {
                fromHost.feed(c.socket.received[taken...])
                taken = c.socket.received.count
            }
        }
        var sentBytes = 0
        for seq in 0..<UInt32(framesEach) {
            let frame = VsockFrame.encode(seq: seq, length: sizes.next(), fromGuest: true)
            #expect(g.write(c.socket, frame, chunk: Int.random(in: 1...(64 << 10)), layouts: VsockTxLayout.allCases,
                            whileWaiting: drainGuest))
            sentBytes += frame.count
            drainGuest()
            if fromHost.fault != nil || host.checker.fault != nil { break }
        }
        #expect(g.pump(seconds: 60) {
            drainGuest()
            return (fromHost.frames == framesEach && host.finished) || fromHost.fault != nil || host.checker.fault != nil
        })
        let seconds = Date().timeIntervalSince(start)
        #expect(fromHost.fault == nil, "host -> guest: \(fromHost.fault ?? "")")
        #expect(host.checker.fault == nil, "guest -> host: \(host.checker.fault ?? "")")
        #expect(fromHost.frames == framesEach)
        #expect(host.checker.frames == framesEach)
        #expect(!c.socket.creditViolated)
        print("vsock stress: \(framesEach) frames each way, \(fromHost.bytes) bytes to the guest, \(host.checker.bytes) to the host "
              + "(\(sentBytes) sent) in \(String(format: "%.2f", seconds)) s, intact")
    }
}
