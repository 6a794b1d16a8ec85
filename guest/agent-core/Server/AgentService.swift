#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import AgentProtocol
import FoundationEssentials

/// grpc.AgentService: each RPC decoded by the router and handed to the `Sandbox`,
/// `NetworkConfigurator` or `FileCopier`.
struct AgentService {
    let sandbox: Sandbox
    let files: FileCopier
    let runsAsInit: Bool

    func register(in router: inout RPCRouter) {
        let service = AgentServiceName.agent
        let sandbox = self.sandbox
        let files = self.files
        let runsAsInit = self.runsAsInit

        router.register(service, "CreateSandbox") { (request: Grpc_CreateSandboxRequest) -> Grpc_Empty in
            try sandbox.createSandbox(request)
            return Grpc_Empty()
        }
        router.register(service, "DestroySandbox") { (_: Grpc_DestroySandboxRequest) -> Grpc_Empty in
            sandbox.destroy()
            if runsAsInit {
                // Power off once the reply is on its way.
                try DetachedThread.start {
                    usleep(200_000)
                    GuestInit.powerOff()
                }
            }
            return Grpc_Empty()
        }
        router.register(service, "CreateContainer") { (request: Grpc_CreateContainerRequest) -> Grpc_Empty in
            try sandbox.createContainer(request)
            return Grpc_Empty()
        }
        router.register(service, "StartContainer") { (request: Grpc_StartContainerRequest) -> Grpc_Empty in
            try sandbox.container(request.containerID).start()
            return Grpc_Empty()
        }
        router.register(service, "RemoveContainer") { (request: Grpc_RemoveContainerRequest) -> Grpc_Empty in
            let seconds = request.timeout == 0 ? 10 : min(Int(request.timeout), 3600)
            try sandbox.removeContainer(request.containerID, timeoutMilliseconds: seconds * 1000)
            return Grpc_Empty()
        }
        router.register(service, "ExecProcess") { (request: Grpc_ExecProcessRequest) -> Grpc_Empty in
            try sandbox.execProcess(request)
            return Grpc_Empty()
        }
        router.register(service, "SignalProcess") { (request: Grpc_SignalProcessRequest) -> Grpc_Empty in
            guard request.signal > 0, request.signal < 65 else { throw AgentError.invalid("invalid signal \(request.signal)") }
            if request.all {
                try sandbox.container(request.containerID).signalAll(Int32(request.signal))
            } else {
                try sandbox.process(request.containerID, request.execID).signal(Int32(request.signal))
            }
            return Grpc_Empty()
        }
        router.register(service, "PauseContainer") { (request: Grpc_PauseContainerRequest) -> Grpc_Empty in
            try sandbox.setPaused(request.containerID, true)
            return Grpc_Empty()
        }
        router.register(service, "UpdateContainer") { (request: Grpc_UpdateContainerRequest) -> Grpc_Empty in
            try sandbox.updateContainer(request)
            return Grpc_Empty()
        }
        router.register(service, "ResumeContainer") { (request: Grpc_ResumeContainerRequest) -> Grpc_Empty in
            try sandbox.setPaused(request.containerID, false)
            return Grpc_Empty()
        }
        router.register(service, "WaitProcess") { (request: Grpc_WaitProcessRequest) -> Grpc_WaitProcessResponse in
            let process = try sandbox.process(request.containerID, request.execID)
            var response = Grpc_WaitProcessResponse()
            response.status = process.waitForExitCode()
            return response
        }
        router.register(service, "WriteStdin") { (request: Grpc_WriteStreamRequest) -> Grpc_WriteStreamResponse in
            let process = try sandbox.process(request.containerID, request.execID)
            var response = Grpc_WriteStreamResponse()
            response.len = UInt32(try process.io.writeStdin(Array(request.data)))
            return response
        }
        router.register(service, "ReadStdout") { (request: Grpc_ReadStreamRequest) -> Grpc_ReadStreamResponse in
            let process = try sandbox.process(request.containerID, request.execID)
            var response = Grpc_ReadStreamResponse()
            response.data = Data(try process.io.read(.stdout, limit: Int(request.len)))
            return response
        }
        router.register(service, "ReadStderr") { (request: Grpc_ReadStreamRequest) -> Grpc_ReadStreamResponse in
            let process = try sandbox.process(request.containerID, request.execID)
            var response = Grpc_ReadStreamResponse()
            response.data = Data(try process.io.read(.stderr, limit: Int(request.len)))
            return response
        }
        router.register(service, "CloseStdin") { (request: Grpc_CloseStdinRequest) -> Grpc_Empty in
            try sandbox.process(request.containerID, request.execID).io.closeStdin()
            return Grpc_Empty()
        }
        router.register(service, "TtyWinResize") { (request: Grpc_TtyWinResizeRequest) -> Grpc_Empty in
            try sandbox.process(request.containerID, request.execID).io.resize(rows: request.row, columns: request.column)
            return Grpc_Empty()
        }
        router.register(service, "UpdateInterface") { (request: Grpc_UpdateInterfaceRequest) -> Grpc_Interface in
            try NetworkConfigurator.update(request.interface)
        }
        router.register(service, "UpdateRoutes") { (request: Grpc_UpdateRoutesRequest) -> Grpc_Routes in
            try NetworkConfigurator.update(request.routes)
        }
        router.register(service, "ListProcesses") { (request: Grpc_ListProcessesRequest) -> Grpc_ListProcessesResponse in
            let pids = try sandbox.container(request.containerID).cgroup.pids()
            var response = Grpc_ListProcessesResponse()
            if request.format == "json" {
                response.processList = Data(("[" + pids.map(String.init).joined(separator: ",") + "]").utf8)
            } else {
                var text = "PID CMD\n"
                for pid in pids {
                    let command = readSmallFile("/proc/\(pid)/comm")?.trimmingWhitespace() ?? "?"
                    text += "\(pid) \(command)\n"
                }
                response.processList = Data(text.utf8)
            }
            return response
        }
        router.register(service, "StatsContainer") { (request: Grpc_StatsContainerRequest) -> Grpc_StatsContainerResponse in
            var response = Grpc_StatsContainerResponse()
            response.cgroupStats = try sandbox.container(request.containerID).cgroup.stats()
            return response
        }
        router.register(service, "CopyFile") { (request: Grpc_CopyFileRequest) -> Grpc_Empty in
            try files.copy(request)
            return Grpc_Empty()
        }
        router.register(service, "GetGuestDetails") { (request: Grpc_GuestDetailsRequest) -> Grpc_GuestDetailsResponse in
            var response = Grpc_GuestDetailsResponse()
            if request.memBlockSize,
               let text = readSmallFile("/sys/devices/system/memory/block_size_bytes")?.trimmingWhitespace(),
               let size = UInt64(text, radix: 16) {
                response.memBlockSizeBytes = size
            }
            response.supportMemHotplugProbe = access("/sys/devices/system/memory/probe", F_OK) == 0
            var details = Grpc_AgentDetails()
            details.version = AgentProtocolVersion.agentVersion
            details.initDaemon = runsAsInit
            details.storageHandlers = ["blk", "bind", "local"]
            details.supportsSeccomp = false
            response.agentDetails = details
            return response
        }
    }
}
