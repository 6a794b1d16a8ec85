import AgentCore

// kata-agent: PID 1 of the sandbox VM. Everything it does is in AgentCore, where the
// host's tests can reach it.
AgentMain.run(arguments: CommandLine.arguments)
