/// Where a container's agent is, from its record.
extension ContainerRecord {
    /// The agent's vsock port inside the guest.
    public static let agentVsockPort: UInt32 = 1024

    public var agentEndpoint: AgentEndpoint {
        agentViaHybridVsock ? .hybridVsock(udsPath: agentSocket, port: Self.agentVsockPort) : .unix(path: agentSocket)
    }

    /// The sandbox VM's hybrid vsock socket.
    public var vsockSocketPath: String { socketDir + "/vsock.sock" }
    public var consoleLogPath: String { stateDir + "/console.log" }
    public var monitorLogPath: String { stateDir + "/monitor.log" }
    public var rootfsImagePath: String { stateDir + "/rootfs.img" }
    public var startFifoPath: String { stateDir + "/start.fifo" }
    public var configCopyPath: String { stateDir + "/config.json" }
    public var sharedDirectoryPath: String { stateDir + "/shared" }
    public var virtiofsSocketPath: String { socketDir + "/virtiofsd.sock" }
    public var virtiofsLogPath: String { stateDir + "/virtiofsd.log" }
}
