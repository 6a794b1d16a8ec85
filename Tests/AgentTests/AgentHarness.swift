import AgentProtocol
import Foundation
import Runtime
import TestSupport

/// A kata-agent running on the host as PID 1 of fresh mount, UTS, IPC and PID
/// namespaces (`unshare`), listening on a Unix socket in the scratch directory, and an
/// `AgentClient` connected to it. `stop()` kills it (unshare --kill-child).
final class AgentHarness {
    let socketPath: String
    let stateDirectory: String
    let client: AgentClient
    /// From spawning the agent to its socket accepting a connection.
    private(set) var startSeconds = 0.0
    private let process: BackgroundCommand

    static var agentBinary: URL {
        let candidate = Fixtures.productsDirectory.appendingPathComponent("kata-agent")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        return Fixtures.packageRoot.appendingPathComponent(".build/debug/kata-agent")
    }

    init(binary: URL = AgentHarness.agentBinary, verbose: Bool = false) throws {
        let name = UUID().uuidString.prefix(8)
        socketPath = Fixtures.scratch.appendingPathComponent("agent-\(name).sock").path
        stateDirectory = Fixtures.scratch.appendingPathComponent("agent-\(name)-state").path
        var arguments = ["--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child", "--mount-proc",
                         binary.path, "--listen", "unix:\(socketPath)", "--state-dir", stateDirectory]
        if verbose { arguments.append("--verbose") }
        process = try BackgroundCommand("/usr/bin/unshare", arguments)
        let began = Date()
        let deadline = began.addingTimeInterval(20)
        var lastError: Error?
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: socketPath) {
                do {
                    client = try AgentClient(connectingTo: .unix(path: socketPath), defaultTimeout: .seconds(60))
                    startSeconds = Date().timeIntervalSince(began)
                    return
                } catch {
                    lastError = error
                }
            }
            usleep(20_000)
        }
        let output = process.finish(timeout: 0)
        throw Fixtures.FixtureError("kata-agent did not come up on \(socketPath): \(String(describing: lastError))\n\(output)")
    }

    /// A second, independent connection to the same agent.
    func connect() throws -> AgentClient {
        try AgentClient(connectingTo: .unix(path: socketPath), defaultTimeout: .seconds(60))
    }

    /// Stops the agent and returns what it printed.
    @discardableResult
    func stop() -> String {
        // DestroySandbox first: the agent removes its containers and its cgroups (on the
        // host they would outlive a killed agent). On its own connection, bounded, so a
        // test that broke the harness's connection still cleans up.
        _ = try? connect().destroySandbox(timeout: .seconds(20))
        client.close()
        return process.finish(timeout: 0)
    }

    deinit { _ = process.finish(timeout: 0) }
}

extension AgentHarness {
    /// VmRSS of the agent process (found by its socket path on its command line).
    func residentSetKiB() -> Int? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for entry in entries where Int(entry) != nil {
            guard let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let arguments = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard arguments.first?.hasSuffix("kata-agent") == true, arguments.contains("unix:\(socketPath)") else { continue }
            guard let status = try? String(contentsOfFile: "/proc/\(entry)/status", encoding: .utf8) else { continue }
            for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
                return Int(line.split(separator: " ").dropFirst().first ?? "")
            }
        }
        return nil
    }
}
