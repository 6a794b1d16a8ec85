import NIOCore
import NIOHTTP1

/// One API connection: collects a request (head and a body of at most `maxBodyBytes`),
/// passes it to the controller and writes the answer back on the event loop. A body
/// over the limit is answered with 400 and the connection closed without reading the
/// rest; an idle connection (no complete request within the idle timeout) is closed.
final class ApiChannelHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let controller: VmController
    let maxBodyBytes: Int
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var refused = false

    init(controller: VmController, maxBodyBytes: Int) {
        self.controller = controller
        self.maxBodyBytes = maxBodyBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body = context.channel.allocator.buffer(capacity: 0)
            refused = false
            if let length = requestHead.headers.first(name: "content-length").flatMap(Int.init), length > maxBodyBytes {
                refuseTooLarge(context: context, size: length)
            }
        case .body(var part):
            guard !refused, var collected = body else { return }
            if collected.readableBytes + part.readableBytes > maxBodyBytes {
                refuseTooLarge(context: context, size: collected.readableBytes + part.readableBytes)
                return
            }
            collected.writeBuffer(&part)
            body = collected
        case .end:
            guard !refused, let requestHead = head else { return }
            let bytes = body.map { Array($0.readableBytesView) } ?? []
            head = nil
            body = nil
            let request = ApiRequest(method: requestHead.method.rawValue, uri: requestHead.uri, body: bytes)
            let keepAlive = requestHead.isKeepAlive
            let version = requestHead.version
            let loop = context.eventLoop
            let bound = NIOLoopBound(context, eventLoop: loop)
            controller.handle(request) { response in
                loop.execute {
                    Self.write(response, version: version, keepAlive: keepAlive, context: bound.value)
                }
            }
        }
    }

    private func refuseTooLarge(context: ChannelHandlerContext, size: Int) {
        refused = true
        body = nil
        let error = ApiError("Request payload with size \(size) is larger than the limit of \(maxBodyBytes) allowed by server.")
        Self.write(.fault(error), version: head?.version ?? .http1_1, keepAlive: false, context: context)
    }

    static func write(_ response: ApiResponse, version: HTTPVersion, keepAlive: Bool, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Server", value: "kata-vmm API")
        if let body = response.body {
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(body.utf8.count))
        }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        if let body = response.body {
            var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
            buffer.writeString(body)
            context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(buffer))), promise: nil)
        }
        let done = context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
