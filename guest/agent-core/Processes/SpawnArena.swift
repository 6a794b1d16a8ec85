#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Owns every C allocation behind one `agent_spawn_config`: strings, string arrays and
/// structure arrays are allocated before the clone (the child must not allocate) and
/// freed when the arena goes away, after the parent has its answer.
final class SpawnArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit {
        for pointer in allocations { free(pointer) }
    }

    /// A C copy of `text`; the caller has rejected strings with NUL bytes.
    func string(_ text: String) -> UnsafePointer<CChar> {
        let pointer = strdup(text)!
        allocations.append(UnsafeMutableRawPointer(pointer))
        return UnsafePointer(pointer)
    }

    func optionalString(_ text: String?) -> UnsafePointer<CChar>? {
        text.map { string($0) }
    }

    /// A NULL-terminated array of C strings.
    func stringArray(_ texts: [String]) -> UnsafePointer<UnsafePointer<CChar>?> {
        let array = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: texts.count + 1)
        for (index, text) in texts.enumerated() { array[index] = string(text) }
        array[texts.count] = nil
        allocations.append(UnsafeMutableRawPointer(array))
        return UnsafePointer(array)
    }

    /// A C array of plain values (nil for an empty array).
    func array<T>(_ values: [T]) -> UnsafePointer<T>? {
        guard !values.isEmpty else { return nil }
        let array = UnsafeMutablePointer<T>.allocate(capacity: values.count)
        array.initialize(from: values, count: values.count)
        allocations.append(UnsafeMutableRawPointer(array))
        return UnsafePointer(array)
    }
}
