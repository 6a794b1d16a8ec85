import Foundation
import Synchronization

/// The host's pool of 2 MiB huge pages, which tests grow for a while and give back. One
/// test at a time in this process holds it (they run in parallel otherwise); the tests
/// run as root, as the VMM's users do to size the pool.
public enum HugePagePool {
    static let poolPath = "/proc/sys/vm/nr_hugepages"
    static let sysfs = "/sys/kernel/mm/hugepages/hugepages-2048kB/"
    private static let holder = Mutex(())

    public static var freePages: Int? { read(sysfs + "free_hugepages") }
    public static var reservedPages: Int? { read(sysfs + "resv_hugepages") }

    /// Runs `body` with `pages` more pages free in the pool than before, then restores it.
    public static func with<T>(pages: Int, _ body: () throws -> T) throws -> T {
        try holder.withLock { _ in
            guard let before = read(poolPath) else { throw Fixtures.FixtureError("no hugetlb pool at \(poolPath)") }
            let free = freePages ?? 0
            try String(before + pages).write(toFile: poolPath, atomically: false, encoding: .utf8)
            defer { try? String(before).write(toFile: poolPath, atomically: false, encoding: .utf8) }
            guard let now = freePages, now >= free + pages else {
                throw Fixtures.FixtureError("the kernel grew the huge-page pool by \((freePages ?? 0) - free) of \(pages) pages")
            }
            return try body()
        }
    }

    static func read(_ path: String) -> Int? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// The kernel page size of the mapping of `pid` that holds `address`, from smaps.
    public static func kernelPageSizeKiB(pid: Int32 = getpid(), containing address: UInt64? = nil, named name: String? = nil) -> Int? {
        // Read to the end: String(contentsOfFile:) stops after the first read of a /proc file.
        guard let data = FileHandle(forReadingAtPath: "/proc/\(pid)/smaps")?.readDataToEndOfFile() else { return nil }
        var inMapping = false
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            if let dash = line.firstIndex(of: "-"), let space = line.firstIndex(of: " "), dash < space,
               let start = UInt64(line[..<dash], radix: 16), let end = UInt64(line[line.index(after: dash)..<space], radix: 16) {
                inMapping = (address.map { $0 >= start && $0 < end } ?? true) && (name.map { line.contains($0) } ?? true)
            } else if inMapping, line.hasPrefix("KernelPageSize:") {
                return Int(line.split(separator: " ")[1])
            }
        }
        return nil
    }
}
