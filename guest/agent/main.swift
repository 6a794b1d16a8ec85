// kata-agent entry point (issue 6).
