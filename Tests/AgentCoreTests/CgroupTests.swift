import Foundation
import OCI
import Testing
@testable import AgentCore

/// Cgroup placement and limits against a scratch directory laid out as the kernel's
/// cgroup filesystems are: the agent's translation of OCI limits into files, checked
/// without a VM or a real hierarchy.
@Suite struct CgroupTests {
    let root: String

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("cgroup-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    func write(_ path: String, _ text: String = "") throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    func read(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    @Test func cgroup2CarriesEveryControllerItOffers() throws {
        try write(root + "/cgroup.controllers", "cpuset cpu io memory pids\n")
        try write(root + "/agent.scope/cgroup.controllers", "cpu memory pids\n")
        let layout = CgroupLayout.detect(membership: "0::/agent.scope\n", root: root)
        #expect(layout.unifiedDirectory == root + "/agent.scope")
        for controller in CgroupLayout.Controller.allCases {
            #expect(layout.placements[controller] == .init(directory: root + "/agent.scope", isV2: true))
        }
    }

    @Test func aHybridHostUsesTheV1HierarchiesForTheControllers() throws {
        try write(root + "/unified/cgroup.controllers", "\n")
        try write(root + "/memory/cgroup.procs")
        try write(root + "/cpu,cpuacct/cgroup.procs")
        try write(root + "/pids/cgroup.procs")
        let membership = "12:pids:/user.slice\n4:cpu,cpuacct:/user.slice\n3:memory:/user.slice/m\n0::/user.slice/u\n"
        let layout = CgroupLayout.detect(membership: membership, root: root)
        #expect(layout.unifiedDirectory == root + "/unified/user.slice/u")
        #expect(layout.placements[.memory] == .init(directory: root + "/memory/user.slice/m", isV2: false))
        #expect(layout.placements[.cpu] == .init(directory: root + "/cpu,cpuacct/user.slice", isV2: false))
        #expect(layout.placements[.pids] == .init(directory: root + "/pids/user.slice", isV2: false))
    }

    @Test func limitsBecomeCgroup2Files() throws {
        var layout = CgroupLayout()
        for controller in CgroupLayout.Controller.allCases { layout.placements[controller] = .init(directory: root, isV2: true) }
        layout.unifiedDirectory = root
        let cgroup = try ContainerCgroup(layout: layout, parentName: "kata", name: "c1", resources: nil)
        let directory = root + "/kata/c1"
        #expect(cgroup.directories == [directory])
        #expect(cgroup.unifiedDirectory == directory)
        for file in ["memory.max", "memory.swap.max", "cpu.max", "cpu.weight", "pids.max"] { try write(directory + "/" + file) }

        var resources = Spec.Resources(.init())
        var memory = Spec.Memory(.init(limit: 256 << 20))
        memory.swap = 384 << 20
        resources.memory = memory
        var cpu = Spec.CPU(.init(quota: 50_000, period: nil))
        cpu.shares = 1024
        resources.cpu = cpu
        resources.pids = Spec.Pids(.init(limit: 0))
        try cgroup.apply(resources)
        #expect(try read(directory + "/memory.max") == "268435456")
        #expect(try read(directory + "/memory.swap.max") == "134217728", "OCI's swap counts memory too; cgroup2's does not")
        #expect(try read(directory + "/cpu.max") == "50000 100000")
        #expect(try read(directory + "/cpu.weight") == "39", "runc's shares-to-weight mapping")
        #expect(try read(directory + "/pids.max") == "max")

        // A cgroup file takes each write whole; these plain files are emptied to match.
        for file in ["memory.max", "pids.max"] { try write(directory + "/" + file) }
        resources.memory = Spec.Memory(.init(limit: -1))
        resources.cpu = nil
        resources.pids = nil
        try cgroup.apply(resources)
        #expect(try read(directory + "/memory.max") == "max")
        #expect(try read(directory + "/cpu.max") == "50000 100000", "a limit not named stays")
        cgroup.destroy()
        #expect(!FileManager.default.fileExists(atPath: directory) || cgroup.directories.isEmpty)
    }

    @Test func limitsBecomeCgroupV1Files() throws {
        var layout = CgroupLayout()
        layout.placements[.memory] = .init(directory: root + "/memory", isV2: false)
        layout.placements[.cpu] = .init(directory: root + "/cpu", isV2: false)
        let cgroup = try ContainerCgroup(layout: layout, parentName: "kata", name: "c1", resources: nil)
        #expect(cgroup.directories == [root + "/memory/kata/c1", root + "/cpu/kata/c1"])
        for file in ["memory/kata/c1/memory.limit_in_bytes", "memory/kata/c1/memory.memsw.limit_in_bytes",
                     "cpu/kata/c1/cpu.cfs_period_us", "cpu/kata/c1/cpu.cfs_quota_us", "cpu/kata/c1/cpu.shares"] {
            try write(root + "/" + file)
        }
        var resources = Spec.Resources(.init(memory: Spec.Memory(.init(limit: 64 << 20)), cpu: Spec.CPU(.init(quota: 20_000, period: 50_000))))
        resources.cpu?.shares = 512
        try cgroup.apply(resources)
        #expect(try read(root + "/memory/kata/c1/memory.limit_in_bytes") == "67108864")
        #expect(try read(root + "/memory/kata/c1/memory.memsw.limit_in_bytes") == "67108864")
        #expect(try read(root + "/cpu/kata/c1/cpu.cfs_period_us") == "50000")
        #expect(try read(root + "/cpu/kata/c1/cpu.cfs_quota_us") == "20000")
        #expect(try read(root + "/cpu/kata/c1/cpu.shares") == "512")
        resources.pids = Spec.Pids(.init(limit: 10))
        #expect(throws: AgentError.self, "no pids controller") { try cgroup.apply(resources) }
    }

    @Test func aSecondContainerWithTheSameNameIsRefused() throws {
        var layout = CgroupLayout()
        layout.placements[.memory] = .init(directory: root, isV2: true)
        _ = try ContainerCgroup(layout: layout, parentName: "kata", name: "twice", resources: nil)
        #expect(throws: AgentError.self) { try ContainerCgroup(layout: layout, parentName: "kata", name: "twice", resources: nil) }
    }
}
