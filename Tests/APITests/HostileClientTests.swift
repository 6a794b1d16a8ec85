import Foundation
import TestSupport
import Testing

/// Clients that misbehave (partial requests then silence, huge bodies, too many
/// connections, garbage) while the guest runs: the guest keeps making progress, other
/// clients keep being answered, and every bound holds.
@Suite struct HostileClientTests {
    static func startCountingGuest() throws -> VmmProcess {
        let probe = try Fixtures.probeGuest()
        let vmm = try VmmProcess()
        #expect(try UnixHTTPClient.request(vmm.socket, "PUT", "/boot-source",
                                           body: #"{"kernel_image_path":"\#(probe.path)","boot_args":"probe.mode=count"}"#).status == 204)
        #expect(try UnixHTTPClient.request(vmm.socket, "PUT", "/actions", body: #"{"action_type":"InstanceStart"}"#).status == 204)
        #expect(vmm.wait { vmm.lastTick >= 1 }, "\(vmm.log)")
        return vmm
    }

    static func expectProgressAndService(_ vmm: VmmProcess, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let tick = vmm.lastTick
        #expect(vmm.wait { vmm.lastTick >= tick + 2 }, "the guest stalled", sourceLocation: sourceLocation)
        let info = try UnixHTTPClient.request(vmm.socket, "GET", "/")
        #expect(info.status == 200 && info.json?["state"] as? String == "Running", sourceLocation: sourceLocation)
    }

    @Test func partialRequestsAndSilence() throws {
        let vmm = try Self.startCountingGuest()
        // Half a head, and a full head promising a body that never comes.
        let halfHead = try UnixHTTPClient(path: vmm.socket, timeout: 20)
        #expect(halfHead.send("PUT /actions HTTP/1.1\r\nHost: loc"))
        let halfBody = try UnixHTTPClient(path: vmm.socket, timeout: 20)
        #expect(halfBody.send("PUT /actions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"action_"))
        try Self.expectProgressAndService(vmm)
        // The server closes both after its idle timeout (10 s); nothing was acted on.
        #expect(halfHead.waitForClose())
        #expect(halfBody.waitForClose())
        try Self.expectProgressAndService(vmm)
    }

    @Test func hugeBodiesAreRefusedWithoutReadingThem() throws {
        let vmm = try Self.startCountingGuest()
        // Announced by Content-Length: refused from the head alone.
        let announced = try UnixHTTPClient(path: vmm.socket)
        #expect(announced.send("PUT /drives/d1 HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n{\"drive_id\":"))
        let refused = try announced.readResponse()
        #expect(refused.status == 400 && refused.faultMessage?.contains("larger than the limit of 51200") == true, "\(refused)")
        #expect(announced.waitForClose())
        // Chunked, with no length: refused once the limit is crossed.
        let chunked = try UnixHTTPClient(path: vmm.socket)
        #expect(chunked.send("PUT /boot-source HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"))
        let chunk = String(repeating: "x", count: 8192)
        for _ in 0..<8 where chunked.send(String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n") {}
        let chunkedRefusal = try chunked.readResponse()
        #expect(chunkedRefusal.status == 400 && chunkedRefusal.faultMessage?.contains("larger than the limit") == true)
        // A body just under the limit is read (and refused as a bad body, not as too big).
        let big = "{\"state\":\"Running\",\"padding\":\"" + String(repeating: "a", count: 50_000) + "\"}"
        let underLimit = try UnixHTTPClient.request(vmm.socket, "PATCH", "/vm", body: big)
        #expect(underLimit.faultMessage?.contains("padding: unknown field") == true, "\(underLimit)")
        // Oversized headers and garbage get a 400 from the HTTP codec and a close.
        let headers = try UnixHTTPClient(path: vmm.socket)
        _ = headers.send("GET / HTTP/1.1\r\nX-Big: " + String(repeating: "h", count: 100_000) + "\r\n\r\n")
        #expect(headers.waitForClose())
        let garbage = try UnixHTTPClient(path: vmm.socket)
        _ = garbage.send("\u{1}\u{2}NOT HTTP AT ALL\r\n\r\n")
        #expect(garbage.waitForClose())
        try Self.expectProgressAndService(vmm)
    }

    @Test func manyConnectionsAreBounded() throws {
        let vmm = try Self.startCountingGuest()
        // 32 idle connections fill the table; the 33rd is closed at once.
        var idle: [UnixHTTPClient] = []
        for _ in 0..<32 { idle.append(try UnixHTTPClient(path: vmm.socket)) }
        // Each holder has been accepted once it gets an answer.
        #expect(try idle[31].request("GET", "/version").status == 200)
        let extra = try UnixHTTPClient(path: vmm.socket, timeout: 5)
        _ = extra.send("GET / HTTP/1.1\r\n\r\n")
        #expect(extra.waitForClose(), "a connection over the limit was served")
        #expect(vmm.wait { vmm.lastTick >= 0 })
        let tick = vmm.lastTick
        #expect(vmm.wait { vmm.lastTick >= tick + 2 }, "the guest stalled")
        // Closing some frees their slots for other clients.
        idle.removeLast(4)
        var served = false
        for _ in 0..<50 where !served {
            served = (try? UnixHTTPClient.request(vmm.socket, "GET", "/"))?.status == 200
            if !served { usleep(50_000) }
        }
        #expect(served)
        // Keep-alive: many requests on one connection.
        let keepAlive = try UnixHTTPClient(path: vmm.socket)
        for _ in 0..<50 { #expect(try keepAlive.request("GET", "/machine-config").status == 200) }
        idle.removeAll()
        try Self.expectProgressAndService(vmm)
    }
}
