// kata-runtime entry point (issue 7).
