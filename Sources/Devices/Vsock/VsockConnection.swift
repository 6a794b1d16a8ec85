import VMM

/// A connection is named by its two ports: the host side (the port the guest connected
/// to, or the ephemeral port the device chose for a host-initiated one) and the guest's.
struct VsockConnectionKey: Hashable, CustomStringConvertible {
    var localPort: UInt32
    var peerPort: UInt32

    var description: String { "host:\(localPort)<->guest:\(peerPort)" }
}

/// One stream between a host Unix socket and a guest vsock socket, with both sides'
/// credit (virtio 1.2, 5.10.6.3) and both directions' shutdown state. Only the muxer
/// touches it, under its lock.
final class VsockConnection: @unchecked Sendable {  // its vars are used only under its VsockMuxer's `lock` (the loop handler holds it weakly)
    enum State { case connecting, established }

    let key: VsockConnectionKey
    let fd: Int32
    let hostInitiated: Bool
    var state: State
    var closed = false
    /// Host-initiated: when the guest must have answered the REQUEST.
    var deadline: UInt64 = 0

    // Control packets owed to the guest.
    var needsRequest = false
    var requestSent = false
    var needsResponse = false
    var needsCreditUpdate = false

    // The host socket.
    var registered = false
    var registeredEvents: UInt32 = 0
    /// epoll said readable (or the peer hung up) and no read has drained it since.
    var hostReadable = false
    /// The host socket reached end of file; SHUTDOWN(SEND) went to the guest.
    var hostEOF = false
    /// The host socket is shut both ways (its client closed it, or shut it down for
    /// reading too): it takes no more data, so the guest is told SHUTDOWN(RECEIVE) too
    /// and answers with the RST that frees the connection (virtio 1.2, 5.10.6.6).
    var hostHungUp = false
    /// The SHUTDOWN flags the guest has been sent.
    var shutdownSent: UInt32 = 0
    /// shutdown(SHUT_WR) done, after the guest's SHUTDOWN(SEND) and a full flush.
    var hostWriteShut = false
    /// shutdown(SHUT_RD) done, after the guest's SHUTDOWN(RECEIVE): the client's writes fail.
    var hostReadShut = false

    // What the guest said it will no longer do.
    var peerShutSend = false
    var peerShutRecv = false

    // Our receive buffer (guest -> host): what we advertise and what we forwarded.
    let bufAlloc: UInt32
    var fwdCnt: UInt32 = 0
    var lastAdvertisedFwdCnt: UInt32 = 0
    /// Data from the guest the host socket would not take yet (at most `bufAlloc`).
    var pending = VsockByteQueue()

    // The guest's receive buffer (host -> guest).
    var peerBufAlloc: UInt32 = 0
    var peerFwdCnt: UInt32 = 0
    var rxCnt: UInt32 = 0

    /// Queued on the muxer's rx work list.
    var queuedForRx = false

    init(key: VsockConnectionKey, fd: Int32, hostInitiated: Bool, state: State, bufAlloc: UInt32) {
        self.key = key
        self.fd = fd
        self.hostInitiated = hostInitiated
        self.state = state
        self.bufAlloc = bufAlloc
    }

    /// Bytes we may still send the guest: its buffer less what it has not consumed.
    var peerCredit: UInt32 {
        let inFlight = rxCnt &- peerFwdCnt
        return inFlight >= peerBufAlloc ? 0 : peerBufAlloc - inFlight
    }

    func updatePeerCredit(bufAlloc: UInt32, fwdCnt: UInt32) {
        peerBufAlloc = bufAlloc
        peerFwdCnt = fwdCnt
    }

    /// Whether host data should still flow to the guest.
    var wantsHostData: Bool { state == .established && !hostEOF && !peerShutRecv }

    var canSendData: Bool { wantsHostData && hostReadable && peerCredit > 0 }

    /// The host hung up after all its data reached the guest (or the guest wanted no more):
    /// SHUTDOWN(SEND|RECEIVE) is owed.
    var needsFullShutdown: Bool {
        state == .established && hostHungUp && (hostEOF || peerShutRecv)
            && shutdownSent & VsockPacketHeader.shutdownReceive == 0
    }

    var hasRxWork: Bool {
        !closed && (needsRequest || needsResponse || needsCreditUpdate || canSendData || needsFullShutdown)
    }

    /// Both directions are over: the guest sends no more and all it sent reached the
    /// host; the host sends no more (end of file) or the guest wants no more.
    var finished: Bool {
        state == .established && peerShutSend && pending.isEmpty && (hostEOF || peerShutRecv)
    }

    /// The epoll events worth waiting for now.
    var desiredEvents: UInt32 {
        guard state == .established else { return 0 }
        var events: UInt32 = 0
        if wantsHostData && !hostReadable { events |= EventLoop.readable }
        if !pending.isEmpty { events |= EventLoop.writable }
        return events
    }

    /// Counts `n` bytes forwarded to the host and asks for a credit update once half our
    /// buffer has been freed without the guest hearing of it.
    func forwarded(_ n: Int) {
        fwdCnt &+= UInt32(truncatingIfNeeded: n)
        if fwdCnt &- lastAdvertisedFwdCnt >= bufAlloc / 2 { needsCreditUpdate = true }
    }
}
