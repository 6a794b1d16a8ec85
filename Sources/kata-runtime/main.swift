// kata-runtime: a runc-compatible OCI runtime whose containers run in microVMs.
// Global flags may come before the subcommand (as containerd, docker and podman pass
// them); they are moved behind it for the parser, which reads them in every subcommand.
import Glibc

let arguments = GlobalArgumentOrder.normalize(Array(CommandLine.arguments.dropFirst()))
KataRuntime.main(arguments)
