import Logging
import VMM

/// virtio-vsock (virtio 1.2, 5.10) as Firecracker's hybrid vsock: guest stream sockets
/// reach host programs through Unix sockets (see `VsockMuxer`). Queues: rx (0), tx (1),
/// event (2). Configuration space: the guest's CID, a little-endian u64.
public final class VirtioVsock: VirtioDevice, Sendable {
    public static let queueSize: UInt16 = 256

    public let deviceType = VirtioDeviceType.vsock
    public let queueMaxSizes: [UInt16] = [VirtioVsock.queueSize, VirtioVsock.queueSize, VirtioVsock.queueSize]
    public let offeredFeatures = VirtioFeature.version1 | VirtioFeature.ringIndirectDescriptors
        | VirtioFeature.ringEventIndex | VsockFeature.stream
    public let guestCid: UInt64
    public let udsPath: String
    let muxer: VsockMuxer

    /// Binds and listens on `udsPath` (a stale socket file there is replaced) and watches
    /// it on `loop`. Guest connections to host port P go to `<udsPath>_P`.
    public init(guestCid: UInt64, udsPath: String, loop: EventLoop, logger: Logger,
                limits: VsockLimits = VsockLimits()) throws {
        // 0, 1 and 2 are the hypervisor, local and host; u32 -1 is VMADDR_CID_ANY.
        guard guestCid >= 3, guestCid < UInt64(UInt32.max) else { throw VsockError.invalidGuestCid(guestCid) }
        self.guestCid = guestCid
        self.udsPath = udsPath
        muxer = try VsockMuxer(guestCid: guestCid, udsPath: udsPath, loop: loop, logger: logger, limits: limits)
    }

    deinit { muxer.close() }

    /// Closes every connection and the listening socket, and removes its file. Idempotent.
    public func close() { muxer.close() }

    public func shutdown() { close() }

    public var statistics: VsockStatistics { muxer.stats }
    public var connectionCount: Int { muxer.connectionCount }

    /// struct virtio_vsock_config.
    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        var w = ByteWriter(size: 8)
        w.u64(guestCid, at: 0)
        readConfig(w.bytes, offset: offset, into: data)
    }

    public func activate(_ context: VirtioDeviceContext) throws {
        muxer.activate(context)
    }

    public func process(queue index: Int) throws {
        try muxer.process(queue: index)
    }

    public func reset() {
        muxer.reset()
    }
}
