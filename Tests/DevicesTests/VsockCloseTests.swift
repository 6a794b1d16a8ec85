import Glibc
import Testing
@testable import Devices
@testable import VMM

/// Every way a vsock stream ends, from either side, on host- and guest-initiated
/// connections, against the simulated Linux driver (which answers a full SHUTDOWN with an
/// RST, as Linux does): the other side must see the end after all the data, and the device
/// must forget the connection and close its socket.
@Suite struct VsockCloseTests {
    typealias Host = VsockDeviceTests
    static let send = VsockPacketHeader.shutdownSend
    static let receive = VsockPacketHeader.shutdownReceive

    /// The device holds its listener and timer only.
    static func expectIdle(_ g: VsockTestGuest, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(g.pump { g.device.connectionCount == 0 }, "connections left: \(g.device.connectionCount)",
                sourceLocation: sourceLocation)
        #expect(g.device.muxer.openDescriptors.count == 2, sourceLocation: sourceLocation)
    }

    /// The RW packets the guest got came before the first SHUTDOWN.
    static func shutdownCameLast(_ socket: VsockGuestSocket) -> Bool {
        guard let first = socket.ops.firstIndex(of: .shutdown) else { return false }
        return !socket.ops[first...].contains(.rw)
    }

    @Test(arguments: ["close", "shutdown(SHUT_RDWR)"])
    func hostCloseGivesTheGuestItsDataThenAFullShutdown(how: String) throws {
        let g = try VsockTestGuest()
        let c = try #require(Host.hostConnect(g, port: 100), "no OK line")
        VsockHostSocket.writeSome(c.fd, Array("last words".utf8))
        if how == "close" { close(c.fd) } else { shutdown(c.fd, Int32(SHUT_RDWR)) }
        defer { if how != "close" { close(c.fd) } }
        // The guest's read returns the data, then 0; its writes would fail: SEND|RECEIVE.
        #expect(g.pump { c.socket.shutdownFlags == Self.send | Self.receive })
        #expect(c.socket.received == Array("last words".utf8))
        #expect(Self.shutdownCameLast(c.socket))
        // Linux answers with an RST: the device forgets the connection.
        #expect(c.socket.sentReset)
        Self.expectIdle(g)
        #expect(!c.socket.gotReset, "the host's close is an orderly end, not a reset")
    }

    @Test func hostHalfCloseThenFullClose() throws {
        let g = try VsockTestGuest()
        let c = try #require(Host.hostConnect(g, port: 101), "no OK line")
        defer { close(c.fd) }
        shutdown(c.fd, Int32(SHUT_WR))
        #expect(g.pump { c.socket.shutdownFlags == Self.send })
        g.settle()
        #expect(c.socket.shutdownFlags == Self.send, "a half-closed host still reads: no RECEIVE")
        // The guest still talks to the host.
        #expect(g.write(c.socket, Array("answer".utf8)))
        #expect(Host.hostRead(g, c.fd, count: 6) == Array("answer".utf8))
        // Now the host closes for good: the guest hears RECEIVE too, resets, all is freed.
        shutdown(c.fd, Int32(SHUT_RD))
        #expect(g.pump { c.socket.shutdownFlags == Self.send | Self.receive })
        Self.expectIdle(g)
    }

    @Test func hostCloseWaitsForTheGuestToTakeEveryByte() throws {
        let g = try VsockTestGuest()
        g.defaultBufAlloc = 1000
        let c = try #require(Host.hostConnect(g, port: 102), "no OK line")
        c.socket.autoConsume = false
        let data = vsockPattern(20_000, seed: 3)
        #expect(VsockHostSocket.writeSome(c.fd, data) == data.count)
        close(c.fd)
        #expect(g.pump { c.socket.received.count == 1000 })
        g.settle()
        #expect(c.socket.received.count == 1000 && c.socket.shutdownFlags == 0, "credit exhausted: nothing more yet")
        #expect(g.device.connectionCount == 1)
        // The application reads; the rest follows, then the end.
        #expect(g.pump {
            if c.socket.unconsumed > 0 { g.consume(c.socket, c.socket.unconsumed, announce: true) }
            return c.socket.shutdownFlags != 0
        })
        #expect(c.socket.received == data)
        #expect(c.socket.shutdownFlags == Self.send | Self.receive)
        #expect(Self.shutdownCameLast(c.socket))
        #expect(!c.socket.creditViolated)
        Self.expectIdle(g)
    }

    @Test func hostCloseWhileTheGuestHasNoRxBuffers() throws {
        let g = try VsockTestGuest()
        let c = try #require(Host.hostConnect(g, port: 103), "no OK line")
        g.holdRx = true
        let data = vsockPattern(300_000, seed: 4)
        var sent = 0
        // As much as the socket and the guest's credit take (the rx ring is full).
        _ = g.pump(seconds: 1) {
            sent += max(0, VsockHostSocket.writeSome(c.fd, data[sent...]))
            return sent == data.count
        }
        let written = sent
        try #require(written > 0)
        close(c.fd)
        g.settle()
        g.holdRx = false
        #expect(g.pump { c.socket.shutdownFlags != 0 })
        #expect(c.socket.received == Array(data[..<written]))
        #expect(Self.shutdownCameLast(c.socket))
        Self.expectIdle(g)
    }

    @Test func hostCloseOnAGuestInitiatedConnection() throws {
        let g = try VsockTestGuest()
        let stream = try #require(g.openToHost(port: 104), "the device never connected to the listener")
        let (s, fd) = (stream.socket, stream.fd)
        #expect(g.write(s, Array("hello".utf8)))
        #expect(Host.hostRead(g, fd, count: 5) == Array("hello".utf8))
        VsockHostSocket.writeSome(fd, Array("bye".utf8))
        close(fd)
        #expect(g.pump { s.shutdownFlags == Self.send | Self.receive })
        #expect(s.received == Array("bye".utf8))
        Self.expectIdle(g)
    }

    @Test func guestHalfCloseOnAGuestInitiatedConnection() throws {
        let g = try VsockTestGuest()
        let stream = try #require(g.openToHost(port: 105), "the device never connected to the listener")
        let (s, fd) = (stream.socket, stream.fd)
        defer { close(fd) }
        #expect(g.write(s, Array("request".utf8)))
        g.shutdown(s, flags: Self.send)
        let got = g.readToEnd(fd)
        #expect(got == Array("request".utf8))
        // The host still answers; then it closes and the guest hears the end.
        VsockHostSocket.writeSome(fd, Array("response".utf8))
        #expect(g.pump { s.received == Array("response".utf8) })
        #expect(g.device.connectionCount == 1)
        shutdown(fd, Int32(SHUT_WR))
        #expect(g.pump { s.gotReset || s.shutdownFlags != 0 })
        Self.expectIdle(g)
    }

    @Test func guestCloseFlushesWhatTheHostHasNotTakenYet() throws {
        let g = try VsockTestGuest()
        let c = try #require(Host.hostConnect(g, port: 106), "no OK line")
        defer { close(c.fd) }
        // A small send buffer on the device's side of the socket: most of the data waits
        // in the device until the host reads.
        for fd in g.device.muxer.openDescriptors.dropFirst(2) {
            var size: Int32 = 4096
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        let data = vsockPattern(200_000, seed: 6)
        #expect(g.write(c.socket, data))
        g.shutdown(c.socket, flags: Self.send | Self.receive)
        g.settle()
        #expect(g.device.connectionCount == 1, "data is still owed to the host")
        #expect(!c.socket.gotReset)
        let got = g.readToEnd(c.fd)
        #expect(got == data)
        #expect(g.pump { c.socket.gotReset })
        Self.expectIdle(g)
    }

    @Test func guestShutdownReceiveFailsTheHostsWrites() throws {
        let g = try VsockTestGuest()
        let c = try #require(Host.hostConnect(g, port: 107), "no OK line")
        defer { close(c.fd) }
        g.shutdown(c.socket, flags: Self.receive)
        var failed = false
        #expect(g.pump {
            failed = VsockHostSocket.writeSome(c.fd, Array("unwanted".utf8)) < 0
            return failed
        }, "the host keeps writing into a stream nobody reads")
        // The guest still sends; then it closes its side too.
        #expect(g.write(c.socket, Array("still here".utf8)))
        #expect(Host.hostRead(g, c.fd, count: 10) == Array("still here".utf8))
        g.shutdown(c.socket, flags: Self.send)
        #expect(Host.hostSeesEOF(g, c.fd))
        Self.expectIdle(g)
    }

    @Test func guestCloseOnAGuestInitiatedConnection() throws {
        let g = try VsockTestGuest()
        let stream = try #require(g.openToHost(port: 108), "the device never connected to the listener")
        let (s, fd) = (stream.socket, stream.fd)
        defer { close(fd) }
        #expect(g.write(s, Array("goodbye".utf8)))
        g.shutdown(s, flags: Self.send | Self.receive)
        let got = g.readToEnd(fd)
        #expect(got == Array("goodbye".utf8))
        #expect(g.pump { s.gotReset })
        Self.expectIdle(g)
    }

    /// A liveness probe's pattern: one short exchange per connection, the host closing.
    @Test func aThousandShortHostConnectionsLeaveNothingBehind() throws {
        let g = try VsockTestGuest()
        for i in 0..<1000 {
            let c = try #require(Host.hostConnect(g, port: 200), "no OK line for connection \(i)")
            VsockHostSocket.writeSome(c.fd, Array("ping".utf8))
            #expect(g.pump { c.socket.received.count == 4 })
            #expect(g.write(c.socket, Array("pong".utf8)))
            #expect(Host.hostRead(g, c.fd, count: 4) == Array("pong".utf8))
            close(c.fd)
            #expect(g.pump { c.socket.sentReset }, "connection \(i): the guest never heard the host close")
            g.sockets[VsockConnectionKey(localPort: 200, peerPort: c.hostPort)] = nil
        }
        Self.expectIdle(g)
        #expect(g.device.statistics.connectionsOpened == 1000)
    }
}
