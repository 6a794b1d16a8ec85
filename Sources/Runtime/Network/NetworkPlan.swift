import AgentProtocol
import Foundation
import LinuxSupport

/// One veth of the container's network namespace and the tap that carries its frames to
/// the VM (Kata's tcfilter model: ingress on each side is redirected, with tc mirred, to
/// the other), with what the guest's interface must look like: the veth's MAC, MTU,
/// addresses and routes.
public struct NetworkInterfacePlan: Codable, Equatable, Sendable {
    public var veth: String
    public var tap: String
    public var mac: String
    public var mtu: Int
    public var addresses: [Address]
    public var routeList: [RouteEntry]

    public struct Address: Codable, Equatable, Sendable {
        public var family: String  // "inet" or "inet6"
        public var local: String
        public var prefixLength: Int
    }

    public struct RouteEntry: Codable, Equatable, Sendable {
        public var destination: String
        public var gateway: String
        public var source: String
        public var scope: UInt32
    }

    public var macBytes: [UInt8]? {
        let octets = mac.split(separator: ":")
        guard octets.count == 6 else { return nil }
        let bytes = octets.compactMap { UInt8($0, radix: 16) }
        return bytes.count == 6 ? bytes : nil
    }

    func agentInterface(guestDevice: String) -> Grpc_Interface {
        var interface = Grpc_Interface()
        interface.device = guestDevice
        interface.name = veth
        interface.mtu = UInt64(mtu)
        interface.hwAddr = mac
        interface.ipaddresses = addresses.map { address in
            var ip = Grpc_IPAddress()
            ip.family = address.family == "inet6" ? .v6 : .v4
            ip.address = address.local
            ip.mask = String(address.prefixLength)
            return ip
        }
        return interface
    }

    var routes: [Grpc_Route] {
        routeList.map { entry in
            var route = Grpc_Route()
            route.dest = entry.destination
            route.gateway = entry.gateway
            route.device = veth
            route.source = entry.source
            route.scope = entry.scope
            return route
        }
    }
}

/// The network of a sandbox: discovered in the namespace, set up (taps + tc), saved to
/// `network.json` in the state dir for the monitor, and torn down at delete.
public enum NetworkPlan {
    static let fileName = "network.json"

    public static func load(from stateDir: String) -> [NetworkInterfacePlan] {
        guard let data = FileManager.default.contents(atPath: stateDir + "/" + fileName) else { return [] }
        return (try? JSONDecoder().decode([NetworkInterfacePlan].self, from: data)) ?? []
    }

    /// The veths of `namespace` with their addresses and routes, IPv4 and IPv6 (from `ip -j`).
    public static func discover(namespace: String) throws -> [NetworkInterfacePlan] {
        let links = try NetworkNamespace.run(in: namespace, ["ip", "-d", "-j", "addr", "show"])
        let routes = try NetworkNamespace.run(in: namespace, ["ip", "-4", "-j", "route", "show"])
        // A host without IPv6 has no such table: none to carry.
        let routes6 = (try? NetworkNamespace.run(in: namespace, ["ip", "-6", "-j", "route", "show"])) ?? "[]"
        return try parse(links: Data(links.utf8), routes: [Data(routes.utf8), Data(routes6.utf8)])
    }

    /// Parses `ip -d -j addr show` and the `ip -j route show` output of each family. The
    /// guest makes its own link-local addresses and their routes; only unicast routes go.
    public static func parse(links: Data, routes: [Data]) throws -> [NetworkInterfacePlan] {
        guard let linkList = try JSONSerialization.jsonObject(with: links) as? [[String: Any]] else {
            throw RuntimeError("ip addr show: unexpected output")
        }
        let routeList = routes.flatMap { (try? JSONSerialization.jsonObject(with: $0)) as? [[String: Any]] ?? [] }.filter { route in
            (route["type"] as? String ?? "unicast") == "unicast" && !(route["dst"] as? String ?? "").lowercased().hasPrefix("fe80:")
        }
        var plans: [NetworkInterfacePlan] = []
        for link in linkList {
            guard let name = link["ifname"] as? String,
                  let info = link["linkinfo"] as? [String: Any], info["info_kind"] as? String == "veth" else { continue }
            let addresses = (link["addr_info"] as? [[String: Any]] ?? []).compactMap { entry -> NetworkInterfacePlan.Address? in
                guard let family = entry["family"] as? String, let local = entry["local"] as? String,
                      let prefix = entry["prefixlen"] as? Int else { return nil }
                if family == "inet6" && local.hasPrefix("fe80") { return nil }  // the guest makes its own link-local
                return .init(family: family, local: local, prefixLength: prefix)
            }
            let routes = routeList.filter { $0["dev"] as? String == name }.compactMap { route -> NetworkInterfacePlan.RouteEntry? in
                guard let destination = route["dst"] as? String else { return nil }
                let scope: UInt32
                switch route["scope"] as? String {
                case "link": scope = 253
                case "host": scope = 254
                default: scope = 0
                }
                return .init(destination: destination, gateway: route["gateway"] as? String ?? "",
                             source: route["prefsrc"] as? String ?? "", scope: scope)
            }
            plans.append(NetworkInterfacePlan(veth: name, tap: "tap\(plans.count)_kata", mac: link["address"] as? String ?? "",
                                              mtu: link["mtu"] as? Int ?? 1500, addresses: addresses, routeList: routes))
        }
        return plans
    }

    /// Creates each tap and the two mirred redirects; saves the plan.
    public static func setUp(_ plans: [NetworkInterfacePlan], namespace: String, stateDir: String) throws {
        let data = try JSONEncoder().encode(plans)
        try AtomicFile.write(data, to: stateDir + "/" + fileName)
        for plan in plans {
            try NetworkNamespace.run(in: namespace, ["ip", "tuntap", "add", "dev", plan.tap, "mode", "tap"])
            try NetworkNamespace.run(in: namespace, ["ip", "link", "set", plan.tap, "mtu", String(plan.mtu), "up"])
            for (from, to) in [(plan.veth, plan.tap), (plan.tap, plan.veth)] {
                _ = try? NetworkNamespace.run(in: namespace, ["tc", "qdisc", "add", "dev", from, "ingress"])
                try NetworkNamespace.run(in: namespace, ["tc", "filter", "add", "dev", from, "parent", "ffff:", "protocol", "all",
                                                         "u32", "match", "u8", "0", "0", "action", "mirred", "egress", "redirect", "dev", to])
            }
        }
    }

    /// Removes the taps and the veth's ingress qdisc (which takes its filters with it).
    public static func tearDown(taps: [String], stateDir: String, namespace: String) {
        let plans = load(from: stateDir)
        for plan in plans where taps.contains(plan.tap) {
            _ = try? NetworkNamespace.run(in: namespace, ["tc", "qdisc", "del", "dev", plan.veth, "ingress"])
        }
        for tap in taps {
            _ = try? NetworkNamespace.run(in: namespace, ["ip", "link", "del", tap])
        }
    }
}
