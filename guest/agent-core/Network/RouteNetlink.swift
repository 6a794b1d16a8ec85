#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The agent's rtnetlink client (NETLINK_ROUTE): links listed, addresses and routes added,
/// IPv4 and IPv6 alike, which the classic ioctls cannot do for IPv6. The socket belongs
/// to the network namespace of the thread that opens it, so the host's tests drive it in a
/// namespace of their own. Every request is acknowledged; a kernel error is the errno of
/// its NLMSG_ERROR.
struct RouteNetlink: ~Copyable {
    /// A link as RTM_GETLINK lists it.
    struct Link: Equatable {
        var index: Int32
        var name: String
        var mac: [UInt8]
    }

    /// An address in the kernel's byte order (network), with its family.
    struct IPAddress: Equatable, CustomStringConvertible {
        var family: UInt8
        var bytes: [UInt8]
        var bitCount: Int { bytes.count * 8 }

        /// A textual IPv4 or IPv6 address (inet_pton's forms), else nil.
        init?(_ text: String) {
            var buffer = [UInt8](repeating: 0, count: 16)
            if inet_pton(AF_INET, text, &buffer) == 1 {
                (family, bytes) = (UInt8(AF_INET), Array(buffer.prefix(4)))
            } else if inet_pton(AF_INET6, text, &buffer) == 1 {
                (family, bytes) = (UInt8(AF_INET6), buffer)
            } else {
                return nil
            }
        }

        var description: String {
            var text = [CChar](repeating: 0, count: 64)
            guard inet_ntop(Int32(family), bytes, &text, 64) != nil else { return "?" }
            return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// What RTM_NEWROUTE installs: `destination` nil is the default route.
    struct Route: Equatable {
        var family: UInt8
        var destination: IPAddress?
        var prefixLength: Int
        var gateway: IPAddress?
        var source: IPAddress?
        var interfaceIndex: Int32
        var scope: UInt8
    }

    // Linux's uapi numbers (linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h).
    enum Kernel {
        static let netlinkRoute: Int32 = 0
        static let request: UInt16 = 0x1, ack: UInt16 = 0x4, dump: UInt16 = 0x300, excl: UInt16 = 0x200, create: UInt16 = 0x400
        static let error: UInt16 = 2, done: UInt16 = 3
        static let newLink: UInt16 = 16, getLink: UInt16 = 18, newAddress: UInt16 = 20, newRoute: UInt16 = 24
        static let linkAddress: UInt16 = 1, linkName: UInt16 = 3
        static let addressAddress: UInt16 = 1, addressLocal: UInt16 = 2, noDAD: UInt8 = 0x02
        static let routeDestination: UInt16 = 1, routeOutput: UInt16 = 4, routeGateway: UInt16 = 5, routeSource: UInt16 = 7
        static let mainTable: UInt8 = 254, protocolBoot: UInt8 = 3, unicast: UInt8 = 1
    }

    /// The most a reply may take: a kernel that never answers must not hold an RPC.
    static let replyTimeoutSeconds = 5
    /// Enough for a dump of a guest's links in a few datagrams; a longer one is cut, not grown.
    static let receiveBufferSize = 32 << 10

    private let fd: Int32
    private var sequence: UInt32 = 1

    init() throws(AgentError) {
        fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Kernel.netlinkRoute)
        guard fd >= 0 else { throw .errno("rtnetlink socket") }
        var timeout = timeval(tv_sec: Self.replyTimeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Every link of this namespace.
    mutating func links() throws(AgentError) -> [Link] {
        var body = [UInt8](repeating: 0, count: 16)  // ifinfomsg, AF_UNSPEC
        body[0] = UInt8(AF_UNSPEC)
        var links: [Link] = []
        try exchange(type: Kernel.getLink, flags: Kernel.request | Kernel.dump, body: body, what: "list links") { type, payload in
            guard type == Kernel.newLink, payload.count >= 16 else { return }
            var link = Link(index: Self.load(payload, payload.startIndex + 4, as: Int32.self), name: "", mac: [])
            Self.attributes(payload, from: 16) { kind, value in
                if kind == Kernel.linkName { link.name = String(decoding: value.prefix { $0 != 0 }, as: UTF8.self) }
                if kind == Kernel.linkAddress { link.mac = Array(value) }
            }
            links.append(link)
        }
        return links
    }

    /// Adds `address/prefixLength` to the link; IPv6 skips duplicate address detection,
    /// since the pod's namespace already owns the address.
    mutating func addAddress(_ address: IPAddress, prefixLength: Int, interfaceIndex: Int32) throws(AgentError) {
        var body: [UInt8] = [address.family, UInt8(prefixLength), address.family == UInt8(AF_INET6) ? Kernel.noDAD : 0, 0]
        Self.append32(&body, UInt32(bitPattern: interfaceIndex))
        Self.appendAttribute(&body, Kernel.addressLocal, address.bytes)
        Self.appendAttribute(&body, Kernel.addressAddress, address.bytes)
        try exchange(type: Kernel.newAddress, flags: Kernel.request | Kernel.ack | Kernel.create | Kernel.excl, body: body,
                     what: "add address \(address)/\(prefixLength)") { _, _ in }
    }

    mutating func addRoute(_ route: Route) throws(AgentError) {
        var body: [UInt8] = [route.family, UInt8(route.prefixLength), 0, 0, Kernel.mainTable, Kernel.protocolBoot, route.scope, Kernel.unicast]
        Self.append32(&body, 0)
        if let destination = route.destination { Self.appendAttribute(&body, Kernel.routeDestination, destination.bytes) }
        if let gateway = route.gateway { Self.appendAttribute(&body, Kernel.routeGateway, gateway.bytes) }
        if let source = route.source { Self.appendAttribute(&body, Kernel.routeSource, source.bytes) }
        var index: [UInt8] = []
        Self.append32(&index, UInt32(bitPattern: route.interfaceIndex))
        Self.appendAttribute(&body, Kernel.routeOutput, index)
        let text = "\(route.destination.map { "\($0)/\(route.prefixLength)" } ?? "default")\(route.gateway.map { " via \($0)" } ?? "")"
        try exchange(type: Kernel.newRoute, flags: Kernel.request | Kernel.ack | Kernel.create | Kernel.excl, body: body,
                     what: "add route \(text)") { _, _ in }
    }

    /// Sends one request and reads its replies to the ack (or the end of a dump), handing
    /// every other message of this request to `each`.
    private mutating func exchange(type: UInt16, flags: UInt16, body: [UInt8], what: String,
                                   _ each: (UInt16, ArraySlice<UInt8>) -> Void) throws(AgentError) {
        sequence &+= 1
        var message: [UInt8] = []
        Self.append32(&message, UInt32(16 + body.count))
        Self.append16(&message, type)
        Self.append16(&message, flags)
        Self.append32(&message, sequence)
        Self.append32(&message, 0)
        message += body
        guard send(fd, message, message.count, 0) == message.count else { throw .errno(what) }
        var buffer = [UInt8](repeating: 0, count: Self.receiveBufferSize)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else {
                if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { throw .system(errno: ETIMEDOUT, "\(what): no answer from the kernel") }
                throw .errno(what)
            }
            let reply = buffer[..<count]
            var offset = 0
            while offset + 16 <= count {
                let length = Int(Self.load(reply, offset, as: UInt32.self))
                guard length >= 16, offset + length <= count else { throw .invalid("\(what): a malformed netlink reply") }
                let kind = Self.load(reply, offset + 4, as: UInt16.self)
                let replySequence = Self.load(reply, offset + 8, as: UInt32.self)
                let payload = reply[(offset + 16)..<(offset + length)]
                offset += (length + 3) & ~3
                guard replySequence == sequence else { continue }  // a late answer to an earlier request
                switch kind {
                case Kernel.done:
                    // A dump that failed part-way ends with its error in the DONE message.
                    let code = payload.count >= 4 ? Self.load(payload, payload.startIndex, as: Int32.self) : 0
                    if code < 0 { throw .system(errno: 0 &- code, what) }
                    return
                case Kernel.error:
                    guard payload.count >= 4 else { throw .invalid("\(what): a short netlink error") }
                    let code = Self.load(payload, payload.startIndex, as: Int32.self)
                    if code == 0 { return }  // the ack
                    throw .system(errno: 0 &- code, what)
                default: each(kind, payload)
                }
            }
        }
    }

    // MARK: wire encoding (host byte order, as netlink is; attributes padded to 4)

    static func append16(_ bytes: inout [UInt8], _ value: UInt16) {
        withUnsafeBytes(of: value) { bytes += $0 }
    }

    static func append32(_ bytes: inout [UInt8], _ value: UInt32) {
        withUnsafeBytes(of: value) { bytes += $0 }
    }

    static func appendAttribute(_ bytes: inout [UInt8], _ kind: UInt16, _ value: [UInt8]) {
        append16(&bytes, UInt16(4 + value.count))
        append16(&bytes, kind)
        bytes += value
        while bytes.count % 4 != 0 { bytes.append(0) }
    }

    /// An integer at index `offset` of `bytes`, 0 past the end.
    static func load<T: FixedWidthInteger>(_ bytes: ArraySlice<UInt8>, _ offset: Int, as: T.Type) -> T {
        let size = MemoryLayout<T>.size
        guard offset >= bytes.startIndex, offset <= bytes.endIndex - size else { return 0 }
        var value = T.zero
        withUnsafeMutableBytes(of: &value) { raw in
            for i in 0..<size { raw[i] = bytes[offset + i] }
        }
        return value
    }

    /// Each rtattr of `payload` from `start` (relative to the payload), stopping at the
    /// first one whose length does not fit.
    static func attributes(_ payload: ArraySlice<UInt8>, from start: Int, _ each: (UInt16, ArraySlice<UInt8>) -> Void) {
        var offset = payload.startIndex + start
        while offset + 4 <= payload.endIndex {
            let length = Int(load(payload, offset, as: UInt16.self))
            let kind = load(payload, offset + 2, as: UInt16.self)
            guard length >= 4, offset + length <= payload.endIndex else { return }
            each(kind & 0x3fff, payload[(offset + 4)..<(offset + length)])
            offset += (length + 3) & ~3
        }
    }
}
