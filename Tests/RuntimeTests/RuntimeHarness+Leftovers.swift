import Foundation
@testable import Runtime
import TestSupport

extension RuntimeHarness {
    /// Everything the runtime may have left for `id`: its state dir, its socket dir.
    func leftovers(_ id: String) -> [String] {
        let store = StateStore(root: root)
        return [store.directory(of: id), store.socketDirectory(of: id)].filter { FileManager.default.fileExists(atPath: $0) }
    }

    /// Live processes of this harness's runtime: every one the runtime starts (monitor,
    /// process shims) carries `--root <root>` in its argv.
    func runtimeProcesses() -> [String] {
        Self.processes { $0.contains(root) }.map { "\($0.pid): \($0.argv.joined(separator: " "))" }
    }

    /// Live processes whose argv is `argv` exactly (a container's own process).
    static func processes(withArgv argv: [String]) -> [Int32] {
        processes { $0 == argv }.map(\.pid)
    }

    /// A /proc scan: live (not zombie) processes whose argv satisfies `matches`.
    static func processes(_ matches: ([String]) -> Bool) -> [(pid: Int32, argv: [String])] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> (Int32, [String])? in
            guard let pid = Int32(entry), pid != getpid(),
                  let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { return nil }
            let argv = data.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
            guard matches(argv), processExists(pid) else { return nil }
            return (pid, argv)
        }
    }

    /// Mount points under `prefix` in `pid`'s mount namespace.
    static func mounts(under prefix: String, of pid: Int32 = getpid()) -> [String] {
        // One read: the table read in pieces can skip mounts a parallel test changes.
        let text = MountTable.snapshot(process: String(pid)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 4, fields[4].hasPrefix(prefix) else { return nil }
            return String(fields[4])
        }
    }
}
