import AgentProtocol

/// grpc.Health: Check (the agent is serving) and Version.
enum HealthService {
    static func register(in router: inout RPCRouter) {
        router.register(AgentServiceName.health, "Check") { (_: Grpc_CheckRequest) -> Grpc_HealthCheckResponse in
            var response = Grpc_HealthCheckResponse()
            response.status = .serving
            return response
        }
        router.register(AgentServiceName.health, "Version") { (_: Grpc_CheckRequest) -> Grpc_VersionCheckResponse in
            var response = Grpc_VersionCheckResponse()
            response.agentVersion = AgentProtocolVersion.agentVersion
            response.grpcVersion = AgentProtocolVersion.protocolVersion
            return response
        }
    }
}
