import Synchronization
import VMM

/// Where the metadata service finds what the guest asks for: the VMM's data store, which
/// the host fills through `PUT` and `PATCH /mmds`.
public protocol MmdsDataSource: AnyObject, Sendable {
    /// The value at `pointer` (an RFC 6901 JSON pointer, "" for the whole store) as JSON
    /// text or in IMDS form (an object's keys a line each, a string as itself).
    func lookup(pointer: String, json: Bool) -> MmdsLookup
}

public enum MmdsLookup: Sendable, Equatable {
    case value(String)
    case notFound
    /// IMDS form has no representation for numbers, booleans, arrays or null.
    case unsupportedInImds
}

/// The HTTP side of Firecracker's metadata service, which the guest reaches over TCP to
/// the MMDS address: GET by JSON pointer in JSON or IMDS form, and V2's session tokens
/// (`PUT /latest/api/token`). One per VM, shared by every interface that reaches it, as
/// its tokens are.
public final class MmdsService: Sendable {
    public let config: MmdsConfig
    let source: any MmdsDataSource
    let clock: @Sendable () -> UInt64
    private let tokens = Mutex(TokenTable())

    /// Firecracker's bounds for a token's lifetime, in seconds.
    public static let ttlRange: ClosedRange<UInt64> = 1...21_600
    /// Sessions kept at once, so a guest that asks for tokens in a loop cannot grow the
    /// VMM: expired ones go first, then the one that would expire soonest. (Firecracker's
    /// tokens are sealed and kept nowhere; here a guest process that floods the table can
    /// end another's session early, which it could not do to a host: every process in the
    /// guest can ask for a token of its own anyway.)
    static let maxTokens = 1024

    public init(config: MmdsConfig, source: any MmdsDataSource,
                clock: @escaping @Sendable () -> UInt64 = ProcessClock.monotonicNanos) {
        self.config = config
        self.source = source
        self.clock = clock
    }

    /// One HTTP response, and whether the connection closes after it.
    struct Response {
        var bytes: [UInt8]
        var close: Bool
    }

    /// Answers one request: `head` is its request line and headers up to and including
    /// the blank line.
    func respond(to head: ArraySlice<UInt8>) -> Response {
        guard let request = HttpRequestHead(head) else {
            return Self.response(400, "Bad Request", body: "The HTTP request is malformed.", close: true)
        }
        let close = request.closesConnection
        if let length = request.header("content-length"), length != "0" {
            return Self.response(400, "Bad Request", body: "MMDS requests carry no body.", close: true)
        }
        switch request.method {
        case "GET": return get(request, close: close)
        case "PUT": return put(request, close: close)
        default:
            return Self.response(405, "Method Not Allowed", body: "Not allowed HTTP method.", close: close,
                                 extraHeaders: "Allow: GET, PUT\r\n")
        }
    }

    private func get(_ request: HttpRequestHead, close: Bool) -> Response {
        if config.version == .v2 {
            guard let token = request.header("x-metadata-token") ?? request.header("x-aws-ec2-metadata-token") else {
                return Self.response(401, "Unauthorized",
                                     body: "No MMDS token provided. Use `X-metadata-token` header to specify the session token.", close: close)
            }
            guard isValid(token: token) else {
                return Self.response(401, "Unauthorized", body: "MMDS token not valid.", close: close)
            }
        }
        // V1 answers with or without a token, valid or not, as Firecracker's does.
        var pointer = Substring(request.path)
        while pointer.hasSuffix("/") { pointer = pointer.dropLast() }
        // Firecracker's imds_compat answers in IMDS form whatever the client accepts.
        let json = !config.imdsCompat && (request.header("accept").map { $0.lowercased().contains("application/json") } ?? false)
        switch source.lookup(pointer: String(pointer), json: json) {
        case .value(let text):
            return Self.response(200, "OK", body: text, close: close,
                                 contentType: json ? "application/json" : "text/plain")
        case .notFound:
            return Self.response(404, "Not Found", body: "Resource not found: \(request.path).", close: close)
        case .unsupportedInImds:
            return Self.response(501, "Not Implemented", body: "Cannot retrieve value. The value has an unsupported type.", close: close)
        }
    }

    private func put(_ request: HttpRequestHead, close: Bool) -> Response {
        guard request.path == "/latest/api/token" else {
            return Self.response(404, "Not Found", body: "Resource not found: \(request.path).", close: close)
        }
        // A request relayed by a proxy in the guest is refused (server-side request forgery).
        if request.header("x-forwarded-for") != nil {
            return Self.response(400, "Bad Request", body: "Invalid header. Reason: Unsupported header name. Key: X-Forwarded-For", close: close)
        }
        guard let text = request.header("x-metadata-token-ttl-seconds") ?? request.header("x-aws-ec2-metadata-token-ttl-seconds") else {
            return Self.response(400, "Bad Request",
                                 body: "Token time to live value not found. Use `X-metadata-token-ttl-seconds` header to specify the token's lifetime.",
                                 close: close)
        }
        guard let ttl = UInt64(text), Self.ttlRange.contains(ttl) else {
            return Self.response(400, "Bad Request",
                                 body: "Invalid time to live value provided for token: \(text.prefix(32)). Please provide a value between 1 and 21600.",
                                 close: close)
        }
        let token = issueToken(ttlSeconds: ttl)
        return Self.response(200, "OK", body: token, close: close,
                             extraHeaders: "X-metadata-token-ttl-seconds: \(ttl)\r\n")
    }

    // MARK: Session tokens

    private struct TokenTable {
        var entries: [(token: String, expiresAt: UInt64)] = []
    }

    /// 32 random bytes in hex: opaque to the guest, unguessable, and never reused.
    func issueToken(ttlSeconds: UInt64) -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for _ in 0..<4 {
            let word = generator.next()
            for shift in stride(from: 60, through: 0, by: -4) { text.append(digits[Int((word >> UInt64(shift)) & 0xF)]) }
        }
        let token = String(decoding: text, as: UTF8.self)
        let now = clock()
        tokens.withLock { table in
            table.entries.removeAll { $0.expiresAt <= now }
            if table.entries.count >= Self.maxTokens,
               let soonest = table.entries.indices.min(by: { table.entries[$0].expiresAt < table.entries[$1].expiresAt }) {
                table.entries.remove(at: soonest)
            }
            table.entries.append((token, now &+ ttlSeconds * 1_000_000_000))
        }
        return token
    }

    func isValid(token: String) -> Bool {
        let now = clock()
        return tokens.withLock { table in table.entries.contains { $0.token == token && $0.expiresAt > now } }
    }

    static func response(_ status: Int, _ reason: String, body: String, close: Bool,
                         contentType: String = "text/plain", extraHeaders: String = "") -> Response {
        let head = "HTTP/1.1 \(status) \(reason)\r\nServer: kata-vmm MMDS\r\n\(extraHeaders)"
            + "Connection: \(close ? "close" : "keep-alive")\r\nContent-Type: \(contentType)\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n"
        return Response(bytes: Array(head.utf8) + Array(body.utf8), close: close)
    }
}

/// An HTTP/1.x request line and its headers, as the guest sent them.
struct HttpRequestHead {
    var method: Substring
    var path: String
    var minorVersion: Int
    /// Names lowercased.
    var headers: [(name: String, value: String)]

    /// Nil unless it is `METHOD SP /target SP HTTP/1.x CRLF (Name: value CRLF)* CRLF`.
    init?(_ bytes: ArraySlice<UInt8>) {
        // Cut on bytes: CR LF is one Character to String.
        guard bytes.count >= 4, bytes.suffix(4).elementsEqual([0x0D, 0x0A, 0x0D, 0x0A]),
              let text = String(validating: bytes.dropLast(4), as: UTF8.self) else { return nil }
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { return nil }
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard requestLine.count == 3, !requestLine[0].isEmpty,
              requestLine[1].hasPrefix("/") || requestLine[1].lowercased().hasPrefix("http://") else { return nil }
        switch requestLine[2] {
        case "HTTP/1.1": minorVersion = 1
        case "HTTP/1.0": minorVersion = 0
        default: return nil
        }
        method = requestLine[0]
        // The query, if any, is not part of the pointer; an absolute form names the path
        // after its host; empty segments ("//") count for nothing, as in Firecracker.
        var target = requestLine[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        if target.lowercased().hasPrefix("http://") {
            let rest = target.dropFirst(7)
            target = rest.firstIndex(of: "/").map { rest[$0...] } ?? "/"
        }
        path = "/" + target.split(separator: "/").joined(separator: "/")
        headers = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else { return nil }
            let name = line[..<colon]
            guard !name.contains(" ") else { return nil }
            let value = line[line.index(after: colon)...].trimmingSpaces
            headers.append((name.lowercased(), String(value)))
        }
    }

    func header(_ lowercasedName: String) -> String? {
        headers.first { $0.name == lowercasedName }?.value
    }

    /// HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless told not to.
    var closesConnection: Bool {
        let connection = header("connection")?.lowercased()
        return minorVersion == 0 ? connection != "keep-alive" : connection == "close"
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return s
    }
}
