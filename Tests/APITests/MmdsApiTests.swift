import Devices
import Foundation
import TestSupport
import Testing
@testable import API

/// MMDS from the host's side: the data store (RFC 7396 merges, RFC 6901 pointers, the
/// IMDS form, the size limit) and its endpoints, `/mmds/config` and the config file.
@Suite struct MmdsApiTests {
    static func json(_ text: String) throws -> JSONValue { try JSONValue.parse(Data(text.utf8)) }

    @Test func mergePatchFollowsRfc7396() throws {
        // RFC 7396's own example.
        let target = try Self.json(#"{"title":"Goodbye!","author":{"givenName":"John","familyName":"Doe"},"tags":["example","sample"],"content":"This will be unchanged"}"#)
        let patch = try Self.json(#"{"title":"Hello!","phoneNumber":"+01-123-456-7890","author":{"familyName":null},"tags":["example"]}"#)
        let expected = try Self.json(#"{"title":"Hello!","author":{"givenName":"John"},"tags":["example"],"content":"This will be unchanged","phoneNumber":"+01-123-456-7890"}"#)
        #expect(MmdsDataStore.merge(patch, into: target) == expected)
        #expect(MmdsDataStore.merge(try Self.json(#"{"a":{"b":1}}"#), into: try Self.json(#"{"a":"x"}"#)) == (try Self.json(#"{"a":{"b":1}}"#)))
        #expect(MmdsDataStore.merge(try Self.json("[1]"), into: try Self.json(#"{"a":1}"#)) == .array([.int(1)]))
    }

    @Test func lookupsByPointerInBothForms() throws {
        let store = MmdsDataStore()
        try store.put(try Self.json(#"{"latest":{"meta-data":{"ami-id":"ami-1","network":{"x":"y"}},"n":5},"a/b":{"m~n":"ok"},"list":["zero","one"]}"#))
        #expect(store.lookup(pointer: "/latest/meta-data/ami-id", json: false) == .value("ami-1"))
        #expect(store.lookup(pointer: "/latest/meta-data/ami-id", json: true) == .value("\"ami-1\""))
        #expect(store.lookup(pointer: "/latest/meta-data", json: false) == .value("ami-id\nnetwork/"))
        #expect(store.lookup(pointer: "/latest", json: false) == .value("meta-data/\nn"))
        #expect(store.lookup(pointer: "/latest/n", json: false) == .unsupportedInImds)
        #expect(store.lookup(pointer: "/latest/n", json: true) == .value("5"))
        #expect(store.lookup(pointer: "/a~1b/m~0n", json: false) == .value("ok"))
        #expect(store.lookup(pointer: "/list/1", json: false) == .value("one"))
        for missing in ["/list/2", "/list/01", "/list/-1", "/nope", "/latest/n/deeper", "no-slash", "/a~2b", "/a~"] {
            #expect(store.lookup(pointer: missing, json: false) == .notFound, "\(missing)")
        }
        #expect(store.lookup(pointer: "", json: true) == .value(store.value.serialized))
    }

    @Test func updatesThatDoNotFitChangeNothing() throws {
        let store = MmdsDataStore(sizeLimit: 32)
        #expect(throws: ApiError.self) { try store.patch(try Self.json(#"{"a":"b"}"#)) }  // before any PUT
        try store.put(try Self.json(#"{"a":"b"}"#))
        #expect(throws: ApiError.self) { try store.put(try Self.json(#"{"a":"\#(String(repeating: "x", count: 40))"}"#)) }
        #expect(throws: ApiError.self) { try store.patch(try Self.json(#"{"c":"\#(String(repeating: "x", count: 40))"}"#)) }
        #expect(store.value == (try Self.json(#"{"a":"b"}"#)))
        try store.patch(try Self.json(#"{"a":null,"c":1}"#))
        #expect(store.value == (try Self.json(#"{"c":1}"#)))
    }

    @Test func theEndpointsOverTheApi() throws {
        let vmm = try VmmProcess(extra: ["--mmds-size-limit", "64"])
        let api = try UnixHTTPClient(path: vmm.socket)
        #expect(try api.request("GET", "/mmds").body == "{}")
        let early = try api.request("PATCH", "/mmds", body: #"{"a":1}"#)
        #expect(early.status == 400 && early.faultMessage?.contains("not initialized") == true)
        #expect(try api.request("PUT", "/mmds", body: #"{"latest":{"id":"i-1"}}"#).status == 204)
        #expect(try api.request("PATCH", "/mmds", body: #"{"latest":{"ip":"10.0.0.2"}}"#).status == 204)
        #expect(try api.request("GET", "/mmds").body == #"{"latest":{"id":"i-1","ip":"10.0.0.2"}}"#)
        let big = try api.request("PUT", "/mmds", body: #"{"x":"\#(String(repeating: "y", count: 80))"}"#)
        #expect(big.status == 413 && big.faultMessage?.contains("over its limit of 64") == true, "\(big)")
        #expect(try api.request("GET", "/mmds").body == #"{"latest":{"id":"i-1","ip":"10.0.0.2"}}"#)

        // /mmds/config names interfaces that exist, at a link-local address.
        for (body, fault) in [(#"{}"#, "network_interfaces: missing required field"),
                              (#"{"network_interfaces":[]}"#, "at least one interface"),
                              (#"{"network_interfaces":["eth0"]}"#, "no network interface 'eth0'"),
                              (#"{"network_interfaces":[1]}"#, "network_interfaces[0]"),
                              (#"{"network_interfaces":["eth0"],"version":"V3"}"#, "version"),
                              (#"{"network_interfaces":["eth0"],"ipv4_address":"10.0.0.1"}"#, "not a link-local IPv4 address"),
                              (#"{"network_interfaces":["eth0"],"ipv4_address":"169.254.0.1"}"#, "not a link-local IPv4 address")] {
            let response = try api.request("PUT", "/mmds/config", body: body)
            #expect(response.status == 400 && response.faultMessage?.contains(fault) == true, "\(body): \(response)")
        }
        #expect(try api.request("PUT", "/network-interfaces/eth0", body: #"{"iface_id":"eth0","host_dev_name":"tapmmds0"}"#).status == 204)
        #expect(try api.request("PUT", "/mmds/config", body: #"{"network_interfaces":["eth0"],"version":"V2","ipv4_address":"169.254.170.2"}"#).status == 204)
        let config = try #require(try api.request("GET", "/vm/config").json?["mmds-config"] as? [String: Any])
        #expect(config["version"] as? String == "V2")
        #expect(config["ipv4_address"] as? String == "169.254.170.2")
        #expect(config["network_interfaces"] as? [String] == ["eth0"])
    }

    @Test func theMetadataFlagFillsTheStore() throws {
        let file = Fixtures.scratch.appendingPathComponent("metadata-\(UUID().uuidString.prefix(8)).json")
        try Data(#"{"latest":{"meta-data":{"ami-id":"ami-flag"}}}"#.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let vmm = try VmmProcess(extra: ["--metadata", file.path])
        #expect(try UnixHTTPClient(path: vmm.socket).request("GET", "/mmds").body == #"{"latest":{"meta-data":{"ami-id":"ami-flag"}}}"#)
        // A metadata file that is not JSON, or over the limit, stops the VMM with the reason.
        try Data("{".utf8).write(to: file)
        let broken = try VmmProcess(extra: ["--api-sock", vmm.path("second.sock"), "--metadata", file.path], api: false)
        #expect(broken.waitForExit() != 0)
        #expect(broken.log.contains("--metadata"))
    }

    @Test func theConfigFileSection() throws {
        let kernel = try Fixtures.probeGuest().path
        let text = #"{"boot-source":{"kernel_image_path":"\#(kernel)"},"network-interfaces":[{"iface_id":"net1","host_dev_name":"tap9"}],"mmds-config":{"network_interfaces":["net1"]}}"#
        let config = try FullVmConfiguration.parse(Data(text.utf8))
        #expect(config.mmds == MmdsConfig(version: .v1, ipv4Address: MmdsConfig.defaultAddress, networkInterfaces: ["net1"]))
        let wrong = #"{"boot-source":{"kernel_image_path":"\#(kernel)"},"mmds-config":{"network_interfaces":["net1"]}}"#
        #expect { try FullVmConfiguration.parse(Data(wrong.utf8)) } throws: { error in
            "\(error)".contains("mmds-config: no network interface 'net1'")
        }
    }
}
