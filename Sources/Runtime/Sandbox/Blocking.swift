import Dispatch

/// Runs async work to completion from synchronous code (the CLI commands, the shim's pump
/// threads): the agent client is async, the runtime's processes are short-lived and
/// thread-per-stream.
enum Blocking {
    private final class Box<T>: @unchecked Sendable {
        var result: Result<T, any Error>?
    }

    static func run<T>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let box = Box<T>()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
            done.signal()
        }
        done.wait()
        switch box.result {
        case .success(let value): return value
        case .failure(let error): throw error
        case nil: throw RuntimeError("internal: async work finished without a result")
        }
    }
}
