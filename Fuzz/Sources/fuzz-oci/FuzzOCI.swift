import Foundation
import FuzzSupport
import OCI
import Runtime

// The OCI documents as the runtime reads them (config.json: decode, then the checks a
// bundle's spec must pass) and as the agent reads them (the spec, an exec's process, new
// resources: one model, OCI), with the VM sizing and pod membership read from it. Whatever decodes must survive encode and decode unchanged,
// unknown members included, and so must the spec the guest is given.

@_cdecl("fuzz_oci_main")
public func fuzzMain(_ argc: Int32, _ argv: FuzzArguments) -> Int32 { runFuzzer(argc, argv, fuzzOneInput) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Data(FuzzInput(data, size).bytes)
    if let spec = try? OCIBundle.decode(bytes, file: "config.json") {
        _ = try? OCIBundle.validate(spec, file: "config.json")
        let guest = GuestSpec(spec, containerId: "fuzz", guestRoot: "/run/kata-containers/fuzz/rootfs", rewriteMounts: false)
        roundTrips(guest.spec)
        // The VM's size and the pod it belongs to come from the spec's resources and annotations.
        _ = try? SandboxSizing(config: RuntimeConfiguration().hypervisor, resources: spec.linux?.resources, annotations: spec.annotations, hostCpus: 2)
        _ = PodMembership(annotations: spec.annotations, id: "fuzz")
    }
    if let spec = try? Spec.decode(bytes) { roundTrips(spec) }
    if let process = try? Spec.Process.decode(bytes) { roundTrips(process) }
    if let resources = try? Spec.Resources.decode(bytes) { roundTrips(resources) }
    return 0
}

/// Decoding what was encoded must give the same value: anything else loses a member on
/// the way to the guest.
func roundTrips<Fields>(_ value: OCIObject<Fields>) {
    guard let again = try? OCIObject<Fields>.decode(value.encoded()), again == value else {
        fatalError("OCI round trip changed \(value)")
    }
}
