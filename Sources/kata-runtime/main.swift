// kata-runtime: a runc-compatible OCI runtime whose containers run in microVMs.
import Glibc
import Runtime

// Callers (conmon, containerd's shim) may hand the runtime fds beyond stdio; none of them
// may leak into the long-lived monitor or process shims, which would keep a caller's pipe
// open long after the container exited.
InheritedDescriptors.closeOnExecAboveStdio()
// Global flags may come before the subcommand (as containerd, docker and podman pass
// them); they are moved behind it for the parser, which reads them in every subcommand.
let arguments = GlobalArgumentOrder.normalize(Array(CommandLine.arguments.dropFirst()))
KataRuntime.main(arguments)
