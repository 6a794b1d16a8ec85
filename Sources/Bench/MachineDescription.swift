import Foundation

/// The machine a benchmark ran on: figures are only comparable within one description.
public struct MachineDescription: Codable, Equatable, Sendable {
    public var cpuModel: String
    public var cpus: Int
    public var kernel: String
    /// VMX, SVM or PVM: how KVM runs guests here.
    public var kvmFlavour: String
    public var date: String

    public static func current() -> MachineDescription {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { String($0).trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown"
        let flags = Set(cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ").map(String.init) ?? [])
        let flavour: String
        if FileManager.default.fileExists(atPath: "/sys/module/kvm_pvm") {
            flavour = "PVM"
        } else if flags.contains("vmx") {
            flavour = "VMX"
        } else if flags.contains("svm") {
            flavour = "SVM"
        } else {
            flavour = "unknown"
        }
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let formatter = ISO8601DateFormatter()
        return MachineDescription(cpuModel: model, cpus: ProcessInfo.processInfo.activeProcessorCount, kernel: release,
                                  kvmFlavour: flavour, date: formatter.string(from: Date()))
    }
}
