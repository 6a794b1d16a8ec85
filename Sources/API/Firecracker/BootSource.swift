import HostInput
import Machine

/// `PUT /boot-source` and the config file's `boot-source`: kernel, initrd, command line.
struct BootSource {
    static let fields = ["kernel_image_path", "initrd_path", "boot_args"]
    var kernelPath: String
    var initrdPath: String?
    var bootArgs: String?

    init(_ json: JSONValue, path: String) throws {
        let object = try StrictObject(json, path: path, allowed: Self.fields)
        kernelPath = try object.nonEmptyString(required: "kernel_image_path")
        initrdPath = try object.string("initrd_path")
        bootArgs = try object.string("boot_args")
        try Self.checkReadable(kernelPath, field: StrictObject.name(path, "kernel_image_path"))
        if let initrdPath { try Self.checkReadable(initrdPath, field: StrictObject.name(path, "initrd_path")) }
        if let bootArgs, bootArgs.utf8.count >= 4096 {
            throw ApiError("\(StrictObject.name(path, "boot_args")): longer than the 4095 bytes the boot protocol allows")
        }
    }

    /// Firecracker opens the images when they are configured; so do we, with the checks
    /// the boot's read makes (a FIFO cannot stall the controller's queue: only regular files pass).
    static func checkReadable(_ file: String, field: String) throws {
        do { try CheckedFile.check(file, role: "file", limit: CheckedFile.bootImageLimit, allowEmpty: false) } catch let error as HostInputError {
            throw ApiError("\(field): \(error)")
        }
    }

    func apply(to config: inout VmConfig) {
        config.kernelPath = kernelPath
        config.initrdPath = initrdPath
        config.cmdline = bootArgs ?? VmConfig.defaultCmdline
    }

    static func describe(_ config: VmConfig) -> JSONValue {
        guard !config.kernelPath.isEmpty else { return .null }
        var object: [String: JSONValue] = ["kernel_image_path": .string(config.kernelPath), "boot_args": .string(config.cmdline)]
        if let initrd = config.initrdPath { object["initrd_path"] = .string(initrd) }
        return .object(object)
    }
}
