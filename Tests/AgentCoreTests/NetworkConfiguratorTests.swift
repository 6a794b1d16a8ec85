import AgentProtocol
import CLinux
import Foundation
import Synchronization
import TestSupport
import Testing
@testable import AgentCore

/// UpdateInterface and UpdateRoutes through rtnetlink, run on the host in a network
/// namespace of the test's own (a thread that joined it: the agent's socket belongs to the
/// thread's namespace): a veth pair stands for the guest's NIC.
@Suite(.serialized) struct NetworkConfiguratorTests {
    struct Namespace {
        let name = "kact-\(UUID().uuidString.prefix(6).lowercased())"
        var path: String { "/var/run/netns/\(name)" }

        init() throws {
            for step in [["netns", "add", name], ["-n", name, "link", "add", "vguest", "type", "veth", "peer", "name", "vpeer"],
                         ["-n", name, "link", "set", "vpeer", "up"]] {
                let result = try VethNamespace.ip(step)
                guard result.status == 0 else { throw Fixtures.FixtureError("ip \(step.joined(separator: " ")): \(result.stderr)") }
            }
        }

        func remove() { _ = try? VethNamespace.ip(["netns", "del", name]) }

        func ip(_ arguments: [String]) throws -> String { try VethNamespace.ip(["-n", name] + arguments).stdout }

        var guestMAC: String {
            let link = (try? ip(["-o", "link", "show", "vguest"])) ?? ""
            guard let range = link.range(of: "link/ether ") else { return "?" }
            return String(link[range.upperBound...].prefix(17))
        }

        /// Runs `body` on a thread that joined the namespace.
        func run<T: Sendable>(_ body: @escaping @Sendable () throws(AgentError) -> T) throws -> Result<T, AgentError> {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw Fixtures.FixtureError("open \(path): errno \(errno)") }
            defer { close(fd) }
            let outcome = Mutex<Result<T, AgentError>?>(nil)
            let done = DispatchSemaphore(value: 0)
            let thread = Thread {
                defer { done.signal() }
                guard clinux_setns(fd, 0x4000_0000) == 0 else {  // CLONE_NEWNET
                    outcome.withLock { $0 = .failure(.errno("setns")) }
                    return
                }
                do throws(AgentError) { let value = try body(); outcome.withLock { $0 = .success(value) } } catch {
                    outcome.withLock { $0 = .failure(error) }
                }
            }
            thread.start()
            done.wait()
            return try #require(outcome.withLock { $0 })
        }
    }

    static func address(_ text: String, _ mask: String, v6: Bool) -> Grpc_IPAddress {
        var address = Grpc_IPAddress()
        address.address = text
        address.mask = mask
        address.family = v6 ? .v6 : .v4
        return address
    }

    static func route(_ dest: String, via gateway: String = "", device: String = "eth7", scope: UInt32 = 0) -> Grpc_Route {
        var route = Grpc_Route()
        route.dest = dest
        route.gateway = gateway
        route.device = device
        route.scope = scope
        return route
    }

    @Test func theGuestNicTakesEveryAddressAndRouteBothFamilies() throws {
        let namespace = try Namespace()
        defer { namespace.remove() }
        var interface = Grpc_Interface()
        interface.hwAddr = namespace.guestMAC.uppercased()
        interface.name = "eth7"
        interface.mtu = 1400
        interface.ipaddresses = [Self.address("10.66.0.2", "24", v6: false), Self.address("fd66::2", "64", v6: true),
                                 Self.address("fd67::2", "", v6: true)]
        var routes = Grpc_Routes()
        // Gateway routes first, as `ip route` may list them: the agent adds the link's first.
        routes.routes = [Self.route("default", via: "10.66.0.1"), Self.route("fd68::/64", via: "fd66::1"),
                         Self.route("default", via: "fe80::1"), Self.route("10.67.0.0/16", scope: 253),
                         Self.route("fd66::/64")]  // the kernel's own prefix route: EEXIST is fine
        let applied = try namespace.run { [interface, routes] () throws(AgentError) in
            let applied = try NetworkConfigurator.update(interface)
            _ = try NetworkConfigurator.update(routes)
            _ = try NetworkConfigurator.update(interface)  // again: what is there already is no error
            return applied
        }.get()
        #expect(applied.name == "eth7" && applied.device == "eth7")

        let addresses = try namespace.ip(["-o", "addr", "show", "dev", "eth7"])
        #expect(addresses.contains("inet 10.66.0.2/24"), "\(addresses)")
        #expect(addresses.contains("inet6 fd66::2/64") && addresses.contains("inet6 fd67::2/128"), "\(addresses)")
        let ours = addresses.split(separator: "\n").filter { $0.contains("fd66::2") || $0.contains("fd67::2") }
        #expect(ours.count == 2 && ours.allSatisfy { $0.contains("nodad") && !$0.contains("tentative") },
                "IPv6 skips duplicate address detection: \(addresses)")
        #expect(try namespace.ip(["-o", "link", "show", "eth7"]).contains("mtu 1400"))
        let v4 = try namespace.ip(["-4", "route", "show"]), v6 = try namespace.ip(["-6", "route", "show"])
        #expect(v4.contains("default via 10.66.0.1 dev eth7") && v4.contains("10.67.0.0/16 dev eth7"), "\(v4)")
        #expect(v6.contains("fd68::/64 via fd66::1 dev eth7") && v6.contains("default via fe80::1 dev eth7"), "\(v6)")
    }

    @Test func aBadRequestChangesNothing() throws {
        let namespace = try Namespace()
        defer { namespace.remove() }
        func refused(_ interface: Grpc_Interface, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let outcome = try namespace.run { () throws(AgentError) in try NetworkConfigurator.update(interface) }
            guard case .failure(let error) = outcome else { Issue.record("accepted", sourceLocation: sourceLocation); return }
            #expect("\(error)".contains(fragment), "\(error)", sourceLocation: sourceLocation)
        }
        var interface = Grpc_Interface()
        interface.hwAddr = namespace.guestMAC
        interface.name = "eth7"
        interface.ipaddresses = [Self.address("10.66.0.2", "24", v6: false), Self.address("fd66::2", "64", v6: false)]
        try refused(interface, "fd66::2 is not an IPv4 address")
        interface.ipaddresses = [Self.address("fd66::2", "129", v6: true)]
        try refused(interface, "bad prefix length 129")
        interface.ipaddresses = [Self.address("10.66.0.300", "24", v6: false)]
        try refused(interface, "not an IP address: 10.66.0.300")
        interface.ipaddresses = Array(repeating: Self.address("10.66.0.2", "24", v6: false), count: 65)
        try refused(interface, "65 addresses: at most 64")
        interface.ipaddresses = []
        interface.hwAddr = "02:00:00:00:00:99"
        interface.name = "nosuch0"
        try refused(interface, "no interface nosuch0")
        // Nothing was renamed or addressed on the way.
        let links = try namespace.ip(["-o", "addr", "show", "dev", "vguest"])
        #expect(!links.contains("10.66.0.2") && !links.contains("fd66::2"), "\(links)")

        for (route, fragment) in [(Self.route("fd68::/64", via: "10.66.0.1", device: "vguest"), "mixes IPv4 and IPv6"),
                                  (Self.route("10.0.0.0/33", device: "vguest"), "bad route destination 10.0.0.0/33"),
                                  (Self.route("10.0.0.0/8/1", device: "vguest"), "bad route destination"),
                                  (Self.route("default", via: "10.1.1.1", device: "nosuch0"), "no device nosuch0")] {
            var routes = Grpc_Routes()
            routes.routes = [route]
            let outcome = try namespace.run { [routes] () throws(AgentError) in try NetworkConfigurator.update(routes) }
            guard case .failure(let error) = outcome else { Issue.record("accepted \(route)"); continue }
            #expect("\(error)".contains(fragment), "\(error)")
        }
    }
}
