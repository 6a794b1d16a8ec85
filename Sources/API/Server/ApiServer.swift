import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Firecracker's API transport: HTTP/1.1 on a Unix socket, served by SwiftNIO on one
/// event-loop thread. Requests are handed to the `VmController`'s queue, so a slow VM
/// operation never stalls the loop. Every resource a client can hold is bounded: body
/// size, header size, open connections, and the time a connection may sit idle (a
/// partial request followed by silence is closed).
public final class ApiServer: @unchecked Sendable {  // `channel` is set by start() and cleared by close(), both on the owner's thread; the rest is `let` or atomic
    public struct Limits: Sendable {
        /// Firecracker's default `--http-api-max-payload-size`.
        public var maxBodyBytes = 51_200
        public var maxHeaderBytes = 16_384
        public var maxConnections = 32
        public var idleTimeout: TimeAmount = .seconds(10)
        public init() {}
    }

    public let socketPath: String
    let controller: VmController
    let limits: Limits
    let logger: Logger
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private var channel: Channel?
    private let openConnections = Atomic<Int>(0)

    public init(socketPath: String, controller: VmController, limits: Limits = Limits(), logger: Logger) {
        self.socketPath = socketPath
        self.controller = controller
        self.limits = limits
        self.logger = logger
    }

    /// Binds the socket (which must not exist yet, as in Firecracker) and starts serving.
    public func start() throws {
        if FileManager.default.fileExists(atPath: socketPath) {
            throw ApiError("API socket '\(socketPath)' already exists (remove it first)")
        }
        let limits = self.limits
        let controller = self.controller
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .childChannelInitializer { [self] channel in
                // Over the limit: the connection is closed at once; others are unaffected.
                if openConnections.wrappingAdd(1, ordering: .relaxed).newValue > limits.maxConnections {
                    openConnections.wrappingSubtract(1, ordering: .relaxed)
                    logger.warning("API: connection refused, \(limits.maxConnections) already open")
                    return channel.close()
                }
                channel.closeFuture.whenComplete { [self] _ in openConnections.wrappingSubtract(1, ordering: .relaxed) }
                var decoderLimits = NIOHTTPDecoderLimitConfiguration()
                decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
                decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
                return channel.pipeline.configureHTTPServerPipeline(
                    withPipeliningAssistance: true, withErrorHandling: true,
                    withDecoderLimitConfiguration: decoderLimits
                ).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandlers([
                        IdleStateHandler(allTimeout: limits.idleTimeout),
                        ApiChannelHandler(controller: controller, maxBodyBytes: limits.maxBodyBytes),
                    ])
                }
            }
            .childChannelOption(.allowRemoteHalfClosure, value: false)
        switch Result(catching: { try bootstrap.bind(unixDomainSocketPath: socketPath).wait() }) {
        case .success(let bound): channel = bound
        case .failure(let error): throw ApiError("cannot listen on the API socket '\(socketPath)': \(error)")
        }
        logger.info("API server listening on \(socketPath)")
    }

    /// Stops accepting, closes the socket and removes its file.
    public func close() {
        try? channel?.close().wait()
        channel = nil
        try? group.syncShutdownGracefully()
        unlink(socketPath)
    }
}
