import Foundation
import Machine

/// Firecracker's whole-VM JSON: what `--config-file` reads and `GET /vm/config` writes.
/// Both go through the same section parsers as the API, into one `VmConfig`.
public enum FullVmConfiguration {
    static let supported = ["boot-source", "machine-config", "drives", "network-interfaces", "vsock", "fs",
                            "entropy", "logger", "metrics", "serial", "balloon", "mmds-config"]
    static let unsupported = ["cpu-config", "pmem", "memory-hotplug"]

    /// Parses a config file's text. Every error names the field (`drives[1].is_root_device`).
    public static func parse(_ data: Data) throws -> VmConfig {
        let json = try JSONValue.parse(data, what: "the config file")
        let object = try StrictObject(json, path: "", allowed: supported + unsupported)
        for key in unsupported where object.has(key) {
            throw ApiError("\(key): not supported by kata-vmm")
        }
        guard let bootSource = object.value("boot-source") else { throw ApiError("boot-source: missing required section") }
        var config = VmConfig(kernelPath: "")
        try BootSource(bootSource, path: "boot-source").apply(to: &config)
        if let machine = object.value("machine-config") {
            try MachineConfiguration(machine, path: "machine-config", partial: false).apply(to: &config, partial: false)
        }
        for (index, drive) in try array(object, "drives").enumerated() {
            let parsed = try Drive(drive, path: "drives[\(index)]", pathId: nil)
            if config.disks.contains(where: { $0.id == parsed.disk.id }) {
                throw ApiError("drives[\(index)].drive_id: '\(parsed.disk.id ?? "")' is used twice")
            }
            if parsed.disk.isRootDevice, config.disks.contains(where: \.isRootDevice) {
                throw ApiError("drives[\(index)].is_root_device: only one drive can be the root device")
            }
            parsed.apply(to: &config)
        }
        for (index, net) in try array(object, "network-interfaces").enumerated() {
            let parsed = try NetworkInterface(net, path: "network-interfaces[\(index)]", pathId: nil)
            if config.nets.contains(where: { $0.id == parsed.net.id }) {
                throw ApiError("network-interfaces[\(index)].iface_id: '\(parsed.net.id ?? "")' is used twice")
            }
            do { try parsed.apply(to: &config) } catch let error as ApiError {
                throw ApiError("network-interfaces[\(index)].\(error.message)")
            }
        }
        for (index, fs) in try array(object, "fs").enumerated() {
            let parsed = try FsDevice(fs, path: "fs[\(index)]", pathId: nil)
            if config.fsIds.contains(parsed.fs.id ?? "") {
                throw ApiError("fs[\(index)].fs_id: '\(parsed.fs.id ?? "")' is used twice")
            }
            parsed.apply(to: &config)
        }
        if let vsock = object.value("vsock") { config.vsock = try VsockSection(vsock, path: "vsock").vsock }
        if let entropy = object.value("entropy") {
            try EntropySection(entropy, path: "entropy").apply(to: &config)
        }
        if let balloon = object.value("balloon") { config.balloon = try BalloonSection(balloon, path: "balloon").config }
        if let logger = object.value("logger") { config.logger = try LoggerSection(logger, path: "logger").log }
        if let metrics = object.value("metrics") { config.metricsPath = try MetricsSection(metrics, path: "metrics").path }
        if let mmds = object.value("mmds-config") { config.mmds = try MmdsConfigSection(mmds, path: "mmds-config").config }
        if let serial = object.value("serial") {
            try SerialSection(serial, path: "serial").apply(to: &config)
        }
        do { try config.validate() } catch { throw ApiError("\(error)") }
        return config
    }

    static func array(_ object: StrictObject, _ key: String) throws -> [JSONValue] {
        guard let value = object.value(key) else { return [] }
        guard case .array(let items) = value else { throw ApiError("\(key): expected an array, got \(value.typeName)") }
        return items
    }

    /// The configuration as `GET /vm/config` reports it (sections not set are null).
    public static func describe(_ config: VmConfig) -> JSONValue {
        .object([
            "boot-source": BootSource.describe(config),
            "machine-config": MachineConfiguration.describe(config),
            "drives": .array(zip(config.disks, config.diskIds).map { Drive.describe($0, id: $1) }),
            "network-interfaces": .array(config.nets.map(NetworkInterface.describe)),
            "vsock": VsockSection.describe(config),
            "fs": .array(zip(config.fs, config.fsIds).map { FsDevice.describe($0, id: $1) }),
            "entropy": EntropySection.describe(config),
            "logger": LoggerSection.describe(config),
            "metrics": MetricsSection.describe(config),
            "balloon": BalloonSection.describe(config.balloon),
            "mmds-config": MmdsConfigSection.describe(config.mmds),
            "cpu-config": .null,
        ])
    }
}
