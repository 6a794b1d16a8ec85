import Foundation
import TestSupport

/// curl --unix-socket: the HTTP client most Firecracker users script with.
enum Curl {
    struct Response {
        var status: Int
        var body: String
    }

    static func request(_ socket: String, _ method: String, _ path: String, body: String? = nil) throws -> Response {
        var arguments = ["-sS", "--max-time", "20", "--unix-socket", socket, "-X", method, "-w", "\n%{http_code}",
                         "http://localhost\(path)"]
        if let body { arguments += ["-H", "Content-Type: application/json", "-d", body] }
        let result = try Command.run("/usr/bin/curl", arguments, timeout: 30)
        guard result.status == 0 else { throw UnixHTTPClient.ClientError(description: "curl failed: \(result.stderr)") }
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return Response(status: Int(lines.last ?? "") ?? 0, body: lines.dropLast().joined(separator: "\n"))
    }
}
