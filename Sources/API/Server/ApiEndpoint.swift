/// One operation of Firecracker's API, recognised from the method and the path.
/// Unknown paths and methods are refused the way Firecracker does (400, fault_message);
/// Firecracker's operations that kata-vmm does not implement are refused naming the
/// feature (`NotImplementedOperation`).
public enum ApiEndpoint: Equatable, Sendable {
    case instanceInfo, version, vmConfig
    case getMachineConfig, putMachineConfig, patchMachineConfig
    case putBootSource
    case putDrive(String), patchDrive(String)
    case putNetworkInterface(String), patchNetworkInterface(String)
    case putFs(String)
    case putVsock, putEntropy, putLogger, putMetrics, putSerial
    case putActions
    case patchVm
    case getBalloon, putBalloon, patchBalloon, getBalloonStatistics, patchBalloonStatistics
    case startBalloonHinting, stopBalloonHinting, getBalloonHintingStatus
    case getMmds, putMmds, patchMmds, putMmdsConfig

    public static func route(method: String, uri: String) throws -> ApiEndpoint {
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        func unsupported() -> ApiError { ApiError("Invalid request method and/or path: \(method) \(path)") }
        switch (method, parts.count, parts.first ?? "") {
        case ("GET", 0, _): return .instanceInfo
        case ("GET", 1, "version"): return .version
        case ("GET", 2, "vm") where parts[1] == "config": return .vmConfig
        case ("GET", 1, "machine-config"): return .getMachineConfig
        case ("PUT", 1, "machine-config"): return .putMachineConfig
        case ("PATCH", 1, "machine-config"): return .patchMachineConfig
        case ("PUT", 1, "boot-source"): return .putBootSource
        case ("PUT", 2, "drives"): return .putDrive(parts[1])
        case ("PATCH", 2, "drives"): return .patchDrive(parts[1])
        case ("PUT", 2, "network-interfaces"): return .putNetworkInterface(parts[1])
        case ("PATCH", 2, "network-interfaces"): return .patchNetworkInterface(parts[1])
        case ("PUT", 2, "fs"): return .putFs(parts[1])
        case ("PUT", 1, "vsock"): return .putVsock
        case ("PUT", 1, "entropy"): return .putEntropy
        case ("PUT", 1, "logger"): return .putLogger
        case ("PUT", 1, "metrics"): return .putMetrics
        case ("PUT", 1, "serial"): return .putSerial
        case ("PUT", 1, "actions"): return .putActions
        case ("PATCH", 1, "vm"): return .patchVm
        case ("GET", 1, "balloon"): return .getBalloon
        case ("PUT", 1, "balloon"): return .putBalloon
        case ("PATCH", 1, "balloon"): return .patchBalloon
        case ("GET", 2, "balloon") where parts[1] == "statistics": return .getBalloonStatistics
        case ("PATCH", 2, "balloon") where parts[1] == "statistics": return .patchBalloonStatistics
        case ("PATCH", 3, "balloon") where parts[1] == "hinting" && parts[2] == "start": return .startBalloonHinting
        case ("PATCH", 3, "balloon") where parts[1] == "hinting" && parts[2] == "stop": return .stopBalloonHinting
        case ("GET", 3, "balloon") where parts[1] == "hinting" && parts[2] == "status": return .getBalloonHintingStatus
        case ("GET", 1, "mmds"): return .getMmds
        case ("PUT", 1, "mmds"): return .putMmds
        case ("PATCH", 1, "mmds"): return .patchMmds
        case ("PUT", 2, "mmds") where parts[1] == "config": return .putMmdsConfig
        case (_, 1, "drives"), (_, 1, "network-interfaces"), (_, 1, "fs"):
            throw ApiError("\(method) \(path): the id is missing from the path")
        default:
            if let feature = NotImplementedOperation.feature(method: method, path: parts) {
                throw ApiError("\(method) \(path): \(feature) is not supported by kata-vmm")
            }
            throw unsupported()
        }
    }

    /// Whether the body is parsed (GET requests have none).
    var takesBody: Bool {
        switch self {
        case .instanceInfo, .version, .vmConfig, .getMachineConfig, .getBalloon, .getBalloonStatistics, .getMmds, .getBalloonHintingStatus: return false
        default: return true
        }
    }

    /// Whether an empty body stands for `{}` (the hinting commands, which clients send bare).
    var bodyIsOptional: Bool {
        self == .startBalloonHinting || self == .stopBalloonHinting
    }

    /// Metrics: (section, counter prefix), Firecracker's names where it has them.
    var metric: (section: String, name: String) {
        switch self {
        case .instanceInfo: return ("get_api_requests", "instance_info")
        case .version: return ("get_api_requests", "vmm_version")
        case .vmConfig: return ("get_api_requests", "vm_config")
        case .getMachineConfig: return ("get_api_requests", "machine_cfg")
        case .putMachineConfig: return ("put_api_requests", "machine_cfg")
        case .patchMachineConfig: return ("patch_api_requests", "machine_cfg")
        case .putBootSource: return ("put_api_requests", "boot_source")
        case .putDrive: return ("put_api_requests", "drive")
        case .patchDrive: return ("patch_api_requests", "drive")
        case .putNetworkInterface: return ("put_api_requests", "network")
        case .patchNetworkInterface: return ("patch_api_requests", "network")
        case .putFs: return ("put_api_requests", "fs")
        case .putVsock: return ("put_api_requests", "vsock")
        case .putEntropy: return ("put_api_requests", "entropy")
        case .putLogger: return ("put_api_requests", "logger")
        case .putMetrics: return ("put_api_requests", "metrics")
        case .putSerial: return ("put_api_requests", "serial")
        case .putActions: return ("put_api_requests", "actions")
        case .patchVm: return ("patch_api_requests", "vm")
        case .getBalloon, .getBalloonStatistics, .getBalloonHintingStatus: return ("get_api_requests", "balloon")
        case .putBalloon: return ("put_api_requests", "balloon")
        case .patchBalloon, .patchBalloonStatistics, .startBalloonHinting, .stopBalloonHinting: return ("patch_api_requests", "balloon")
        case .getMmds: return ("get_api_requests", "mmds")
        case .putMmds, .putMmdsConfig: return ("put_api_requests", "mmds")
        case .patchMmds: return ("patch_api_requests", "mmds")
        }
    }
}

/// An HTTP request the server has read completely (body bounded by the server's limits).
public struct ApiRequest: Sendable {
    public var method: String
    public var uri: String
    public var body: [UInt8]

    public init(method: String, uri: String, body: [UInt8]) {
        self.method = method
        self.uri = uri
        self.body = body
    }
}

/// What the server sends back: a status and, except for 204, a JSON body.
public struct ApiResponse: Sendable, Equatable {
    public var status: Int
    public var body: String?

    public static let noContent = ApiResponse(status: 204, body: nil)

    public static func json(_ value: JSONValue, status: Int = 200) -> ApiResponse {
        ApiResponse(status: status, body: value.serialized)
    }

    public static func fault(_ error: ApiError) -> ApiResponse {
        .json(.object(["fault_message": .string(error.message)]), status: error.status)
    }
}
