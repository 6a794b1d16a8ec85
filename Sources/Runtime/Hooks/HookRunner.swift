import Foundation
import Glibc
import OCI
import LinuxSupport

/// The lifecycle points at which OCI hooks run.
public enum HookKind: String, CaseIterable, Sendable {
    case prestart, createRuntime, createContainer, startContainer, poststart, poststop

    /// Whether a failing hook fails the operation (the others are logged and skipped past,
    /// as the runtime spec says for poststart and poststop).
    public var isFatal: Bool { self != .poststart && self != .poststop }
}

extension Spec.Hooks {
    public func list(for kind: HookKind) -> [Spec.Hook] {
        switch kind {
        case .prestart: return fields.prestart ?? []
        case .createRuntime: return fields.createRuntime ?? []
        case .createContainer: return fields.createContainer ?? []
        case .startContainer: return fields.startContainer ?? []
        case .poststart: return fields.poststart ?? []
        case .poststop: return fields.poststop ?? []
        }
    }
}

/// Runs OCI hooks: the hook's path with its args (args[0] is argv[0]) and only its env,
/// the container's state JSON on stdin, killed after `timeout` seconds.
public struct HookRunner {
    public struct HookError: Error, CustomStringConvertible {
        public let description: String
    }

    public var warn: (String) -> Void

    public init(warn: @escaping (String) -> Void = { _ in }) { self.warn = warn }

    /// Runs the hooks of `kind` in order; stops at the first failure of a fatal kind.
    public func run(_ kind: HookKind, hooks: Spec.Hooks?, state: OCIState) throws {
        let list = hooks?.list(for: kind) ?? []
        guard !list.isEmpty else { return }
        let input = Array(try state.jsonData())
        for (index, hook) in list.enumerated() {
            do {
                try run(hook, stdin: input)
            } catch {
                let message = "\(kind.rawValue) hook #\(index) (\(hook.path)): \(error)"
                if kind.isFatal { throw HookError(description: message) }
                warn(message)
            }
        }
    }

    func run(_ hook: Spec.Hook, stdin input: [UInt8]) throws {
        let stdinPipe = try FileDescriptors.pipe()
        let outputPipe = try FileDescriptors.pipe()
        let argv = (hook.args?.isEmpty == false) ? hook.args! : [hook.path]
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(path: hook.path, argv: argv, env: hook.env ?? [],
                                           fds: [0: stdinPipe.read, 1: outputPipe.write, 2: outputPipe.write])
        } catch {
            close(stdinPipe.read); close(stdinPipe.write); close(outputPipe.read); close(outputPipe.write)
            throw error
        }
        close(stdinPipe.read)
        close(outputPipe.write)
        // The hook may not read its stdin: a full pipe or EPIPE is not its failure.
        let previous = signal(SIGPIPE, SIG_IGN)
        _ = try? FileDescriptors.writeAll(stdinPipe.write, input)
        close(stdinPipe.write)
        signal(SIGPIPE, previous)

        let deadline = hook.timeout.map { Date().addingTimeInterval(Double($0)) }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var outputOpen = true
        /// Takes what is in the pipe within `milliseconds` (the first 4 KiB are kept);
        /// false once there is nothing more to read.
        func readOutput(waiting milliseconds: Int32) -> Bool {
            var pfd = pollfd(fd: outputPipe.read, events: Int16(POLLIN), revents: 0)
            guard Glibc.poll(&pfd, 1, milliseconds) > 0 else { return false }
            let count = buffer.withUnsafeMutableBytes { read(outputPipe.read, $0.baseAddress, $0.count) }
            guard count > 0 else {
                if count == 0 { outputOpen = false }
                return false
            }
            if output.count < 4096 { output += buffer[0..<count] }
            return true
        }
        var termination: ChildProcess.Termination?
        while termination == nil {
            if outputOpen { _ = readOutput(waiting: 20) } else { usleep(10_000) }
            termination = try child.poll()
            if termination == nil, let deadline, Date() > deadline {
                kill(child.pid, SIGKILL)
                _ = try child.wait()
                close(outputPipe.read)
                throw HookError(description: "timed out after \(hook.timeout ?? 0) s and was killed")
            }
        }
        // What the hook wrote just before exiting is still in the pipe: take it without
        // waiting for end of file (a child of the hook may hold the pipe open).
        while outputOpen && readOutput(waiting: 0) {}
        close(outputPipe.read)
        let text = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        switch termination {
        case .exited(0): return
        case .exited(let code): throw HookError(description: "exited with status \(code)" + (text.isEmpty ? "" : ": \(text)"))
        case .signalled(let signal): throw HookError(description: "killed by signal \(signal)")
        case nil: return
        }
    }
}
