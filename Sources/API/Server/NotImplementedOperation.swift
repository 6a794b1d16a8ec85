/// Firecracker's operations that kata-vmm does not implement (yet), by path, so that a
/// client calling one learns which feature is missing instead of reading "invalid path".
/// Which methods each path has is Firecracker's swagger file; a method it does not define
/// on such a path is an ordinary invalid request.
enum NotImplementedOperation {
    /// (first path segment, path length, methods) -> the feature, in words.
    private static let table: [(root: String, length: Int, methods: Set<String>, feature: String)] = [
        ("cpu-config", 1, ["PUT"], "a custom CPU template (the guest gets KVM's supported CPUID)"),
        ("pmem", 2, ["PUT", "PATCH"], "virtio-pmem"),
        ("hotplug", 2, ["GET", "PUT", "PATCH"], "memory hotplug (virtio-mem)"),  // /hotplug/memory
        ("snapshot", 2, ["PUT"], "snapshotting"),  // /snapshot/create, /snapshot/load
    ]

    private static let secondSegment: [String: Set<String>] = [
        "hotplug": ["memory"], "snapshot": ["create", "load"],
    ]

    /// The missing feature `method path` asks for, or nil when Firecracker has no such operation.
    static func feature(method: String, path: [String]) -> String? {
        guard let root = path.first,
              let entry = table.first(where: { $0.root == root && $0.length == path.count }),
              entry.methods.contains(method) else { return nil }
        if path.count >= 2, let allowed = secondSegment[root], !allowed.contains(path[1]) { return nil }
        return entry.feature
    }
}
