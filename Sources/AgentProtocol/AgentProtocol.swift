// AgentProtocol: ttrpc framing and protobuf messages (issue 6).
