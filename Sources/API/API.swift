// API: Firecracker-compatible HTTP API and config file (issue 5).
