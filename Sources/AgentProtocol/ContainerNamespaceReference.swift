/// How the spec the agent receives names a namespace of another container of the same
/// sandbox: on the host the OCI spec names `/proc/<pid>/ns/ipc` of a host process, which
/// means nothing in the guest, so the runtime writes this instead and the agent joins the
/// namespace of that container's init (the pod's pause container holds the pod's IPC and
/// UTS namespaces, as Kata's agent keeps them for its sandbox).
public enum ContainerNamespaceReference {
    public static let prefix = "/run/kata-containers/containers/"
    /// The namespace types a container may share with another of its sandbox.
    public static let shareable: Set<String> = ["ipc", "uts"]

    public static func path(container: String, type: String) -> String { prefix + container + "/ns/" + type }

    /// The container and namespace type of a reference; nil for any other path.
    public static func parse(_ path: String) -> (container: String, type: String)? {
        guard path.hasPrefix(prefix) else { return nil }
        let parts = path.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[1] == "ns", !parts[2].isEmpty else { return nil }
        return (String(parts[0]), String(parts[2]))
    }
}
