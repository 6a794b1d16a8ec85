import Foundation
import Glibc
import LinuxSupport
@testable import Runtime
import Testing

/// The runtime's end of the hybrid vsock handshake, against a socketpair playing the VMM:
/// CONNECT goes out, an OK reply is consumed to its newline and not a byte further, and a
/// refusal, a silent peer or an overlong line fail as before.
@Suite struct HybridVsockHandshakeTests {
    /// Runs the handshake for port 1024 against a peer that already sent `reply`; returns
    /// the outcome, what the peer received and what is left to read after the handshake.
    func handshake(replying reply: String) -> (error: AgentClientError?, sent: String, rest: String) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { return (nil, "socketpair failed", "") }
        defer { close(fds[0]) }
        let bytes = Array(reply.utf8)
        _ = bytes.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
        shutdown(fds[1], Int32(SHUT_WR))
        var failure: AgentClientError?
        do { try AgentEndpoint.handshake(fd: fds[0], port: 1024) } catch { failure = error }
        shutdown(fds[0], Int32(SHUT_WR))
        let sent = readAll(fds[1])
        close(fds[1])
        return (failure, sent, failure == nil ? readAll(fds[0]) : "")
    }

    func readAll(_ fd: Int32) -> String {
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            all += buffer[..<n]
        }
        return String(decoding: all, as: UTF8.self)
    }

    @Test func okReplyLeavesTheStreamUntouched() {
        let result = handshake(replying: "OK 1073741824\nagent bytes")
        #expect(result.error == nil)
        #expect(result.sent == "CONNECT 1024\n")
        #expect(result.rest == "agent bytes")
    }

    @Test func refusalSilenceAndOverlongLinesFail() {
        guard case .connectionClosed(let why)? = handshake(replying: "FAILURE no listener\n").error else {
            Issue.record("a refusal was accepted")
            return
        }
        #expect(why == "hybrid vsock: FAILURE no listener")
        guard case .connectionClosed(let silent)? = handshake(replying: "").error else {
            Issue.record("a silent peer was accepted")
            return
        }
        #expect(silent == "hybrid vsock: no reply to CONNECT 1024")
        guard case .protocolViolation(let long)? = handshake(replying: String(repeating: "O", count: 40) + "\n").error else {
            Issue.record("an overlong line was accepted")
            return
        }
        #expect(long == "hybrid vsock: reply line longer than 32 bytes")
    }

    /// A VMM that accepts hybrid vsock clients on a Unix socket and closes the first
    /// `refusals` without a reply (the guest did not answer), then says OK.
    final class FakeVMM: @unchecked Sendable {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("hv-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock").path
        let listener: Int32
        private(set) var accepted = 0

        init?(refusals: Int) {
            listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard let address = UnixSocketAddress(path), address.bind(listener) == 0, Glibc.listen(listener, 16) == 0 else { return nil }
            Thread.detachNewThread { [self] in
                while true {
                    let client = accept(self.listener, nil, nil)
                    guard client >= 0 else { return }
                    self.accepted += 1
                    var line = [UInt8](repeating: 0, count: 64)
                    _ = read(client, &line, line.count)
                    if self.accepted > refusals {
                        let ok = Array("OK 1073741824\n".utf8)
                        _ = ok.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
                    }
                    close(client)
                }
            }
        }

        deinit {
            shutdown(listener, Int32(SHUT_RDWR))
            close(listener)
            unlink(path)
        }
    }

    @Test func aDialTheVMMClosedIsTriedAgainWithinTheWindow() throws {
        let vmm = try #require(FakeVMM(refusals: 2))
        let policy = AgentDialPolicy(window: .seconds(10), pause: .milliseconds(10))
        let (fd, attempts) = try AgentEndpoint.hybridVsock(udsPath: vmm.path, port: 1024).connect(policy)
        close(fd)
        #expect(attempts == 3)
    }

    @Test func aDialThatNeverGetsAnAnswerFailsWithTheLastReason() throws {
        let vmm = try #require(FakeVMM(refusals: .max))
        let policy = AgentDialPolicy(window: .milliseconds(300), pause: .milliseconds(20))
        do {
            _ = try AgentEndpoint.hybridVsock(udsPath: vmm.path, port: 1024).connect(policy)
            Issue.record("a VMM that never answered was accepted")
        } catch {
            #expect("\(error)".hasPrefix("agent connection closed: hybrid vsock: no reply to CONNECT 1024 (after "), "\(error)")
            #expect(vmm.accepted > 2)
        }
        // No VMM behind the path at all: one attempt, not a window of them.
        do {
            _ = try AgentEndpoint.hybridVsock(udsPath: vmm.path + ".absent", port: 1024).connect(.standard)
            Issue.record("a missing socket was accepted")
        } catch {
            #expect("\(error)".hasPrefix("agent connection closed: connect(\(vmm.path).absent): "), "\(error)")
            #expect(!"\(error)".contains("attempts"), "\(error)")
        }
    }
}
