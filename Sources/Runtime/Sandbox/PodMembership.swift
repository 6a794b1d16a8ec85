/// Which pod sandbox a container belongs to, as its callers say: containerd's CRI and
/// CRI-O annotate every container of a pod with its role and its sandbox's id (Kata reads
/// the same annotations). A pod's app container runs in its sandbox's VM, so the sandbox
/// must be a container of this runtime root that has not stopped.
public enum PodMembership: Equatable, Sendable {
    case sandbox
    case member(of: String, annotation: String)
    case standalone

    static let containerd = (type: "io.kubernetes.cri.container-type", sandbox: "io.kubernetes.cri.sandbox-id")
    static let crio = (type: "io.kubernetes.cri-o.ContainerType", sandbox: "io.kubernetes.cri-o.SandboxID")

    public init(annotations: [String: String]?, id: String) {
        self = .standalone
        for keys in [Self.containerd, Self.crio] {
            guard let type = annotations?[keys.type] else { continue }
            if type == "sandbox" {
                self = .sandbox
            } else if type == "container", let sandbox = annotations?[keys.sandbox], !sandbox.isEmpty, sandbox != id {
                self = .member(of: sandbox, annotation: keys.sandbox)
            }
            return
        }
    }

    /// The sandbox of a member must exist under this root and still run; its record,
    /// where there is one. `sharesAgent`: one agent serves every container here (the host
    /// agent). Otherwise the member runs in the sandbox's VM, whose share must take its
    /// rootfs: the sandbox must use virtio-fs.
    @discardableResult
    public func check(id: String, store: StateStore, sharesAgent: Bool) throws -> ContainerRecord? {
        guard case .member(let sandbox, let annotation) = self else { return nil }
        guard store.exists(sandbox), let record = try? store.load(sandbox) else {
            throw RuntimeError("container \(id) belongs to sandbox \(sandbox) (\(annotation)), which does not exist under --root \(store.root)")
        }
        let status = StateStore.effectiveStatus(record)
        guard status != .stopped else {
            throw RuntimeError("container \(id) belongs to sandbox \(sandbox) (\(annotation)), which has stopped")
        }
        guard record.sandboxId == nil else {
            throw RuntimeError("container \(id) belongs to sandbox \(sandbox) (\(annotation)), which is itself a member of sandbox \(record.sandboxId ?? "")")
        }
        guard sharesAgent || record.virtiofsd != nil else {
            throw RuntimeError("container \(id) belongs to sandbox \(sandbox) (\(annotation)), whose VM has no shared filesystem "
                + "to take its rootfs (shared_fs = \"none\")")
        }
        return record
    }
}
