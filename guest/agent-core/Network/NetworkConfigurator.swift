#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import AgentProtocol
import CAgentSpawn

/// UpdateInterface and UpdateRoutes: the guest's NIC takes the pod's veth's name, MTU and
/// every address, IPv4 and IPv6, and the routes the veth had. Links are found and
/// addresses and routes added through rtnetlink (`RouteNetlink`); rename, MTU and up are
/// the classic ioctls. All of a request is checked before anything is touched.
enum NetworkConfigurator {
    /// At most this many addresses or routes per request: a pod has a handful.
    static let maxEntries = 64

    static func update(_ interface: Grpc_Interface) throws(AgentError) -> Grpc_Interface {
        guard interface.ipaddresses.count <= maxEntries else { throw .invalid("\(interface.ipaddresses.count) addresses: at most \(maxEntries)") }
        guard interface.mtu <= 65535 else { throw .invalid("bad MTU \(interface.mtu)") }
        var addresses: [(RouteNetlink.IPAddress, Int)] = []
        for entry in interface.ipaddresses {
            guard let address = RouteNetlink.IPAddress(entry.address) else { throw .invalid("not an IP address: \(entry.address)") }
            let family = entry.family == .v6 ? UInt8(AF_INET6) : UInt8(AF_INET)
            guard address.family == family else { throw .invalid("\(entry.address) is not an \(entry.family == .v6 ? "IPv6" : "IPv4") address") }
            guard let prefix = entry.mask.isEmpty ? address.bitCount : Int(entry.mask), prefix >= 0, prefix <= address.bitCount else {
                throw .invalid("bad prefix length \(entry.mask) for \(entry.address)")
            }
            addresses.append((address, prefix))
        }
        if !interface.name.isEmpty {
            guard interface.name.utf8.count < 16, !interface.name.contains("/"), interface.name != ".", interface.name != ".." else {
                throw .invalid("bad interface name \(interface.name)")
            }
        }
        var netlink = try RouteNetlink()
        let link = try findLink(interface, netlink.links())
        var name = link.name
        // The guest's interface takes the veth's name, as Kata's agent does, so that the
        // routes (which name the veth) and the container see what the namespace had.
        if !interface.name.isEmpty && interface.name != name {
            guard agent_if_rename(name, interface.name) == 0 else { throw .errno("rename \(name) to \(interface.name)") }
            name = interface.name
        }
        if interface.mtu > 0 {
            guard agent_if_set_mtu(name, Int32(interface.mtu)) == 0 else { throw .errno("set mtu of \(name)") }
        }
        guard agent_if_up(name) == 0 else { throw .errno("bring up \(name)") }
        for (address, prefix) in addresses {
            do { try netlink.addAddress(address, prefixLength: prefix, interfaceIndex: link.index) } catch .system(EEXIST, _) {}
        }
        var applied = interface
        applied.name = name
        applied.device = name
        return applied
    }

    static func update(_ routes: Grpc_Routes) throws(AgentError) -> Grpc_Routes {
        guard routes.routes.count <= maxEntries else { throw .invalid("\(routes.routes.count) routes: at most \(maxEntries)") }
        var netlink = try RouteNetlink()
        let links = try netlink.links()
        var planned: [RouteNetlink.Route] = []
        for route in routes.routes {
            planned.append(try plan(route, links: links))
        }
        // Routes to the link first: a gateway must be reachable before a route uses it.
        for route in planned.filter({ $0.gateway == nil }) + planned.filter({ $0.gateway != nil }) {
            do { try netlink.addRoute(route) } catch .system(EEXIST, _) {}  // the kernel's own prefix route
        }
        return routes
    }

    /// One route checked and resolved: its family from its addresses, its device by name.
    static func plan(_ route: Grpc_Route, links: [RouteNetlink.Link]) throws(AgentError) -> RouteNetlink.Route {
        var destination: RouteNetlink.IPAddress?
        var prefix = 0
        if !route.dest.isEmpty && route.dest != "default" {
            let parts = route.dest.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2, let address = RouteNetlink.IPAddress(String(parts[0])) else { throw .invalid("bad route destination \(route.dest)") }
            guard let length = parts.count == 2 ? Int(parts[1]) : address.bitCount, length >= 0, length <= address.bitCount else {
                throw .invalid("bad route destination \(route.dest)")
            }
            (destination, prefix) = (address, length)
        }
        let gateway = route.gateway.isEmpty ? nil : RouteNetlink.IPAddress(route.gateway)
        guard route.gateway.isEmpty || gateway != nil else { throw .invalid("bad gateway \(route.gateway)") }
        let source = route.source.isEmpty ? nil : RouteNetlink.IPAddress(route.source)
        guard route.source.isEmpty || source != nil else { throw .invalid("bad source \(route.source)") }
        let families = Set([destination, gateway, source].compactMap { $0?.family })
        guard families.count <= 1 else { throw .invalid("route \(route.dest) via \(route.gateway) mixes IPv4 and IPv6") }
        guard let link = links.first(where: { $0.name == route.device }) else { throw .notFound("route \(route.dest): no device \(route.device)") }
        guard route.scope <= 255 else { throw .invalid("bad route scope \(route.scope)") }
        let family = families.first ?? UInt8(AF_INET)  // a default route to the link alone: IPv4's
        return .init(family: family, destination: destination, prefixLength: prefix, gateway: gateway, source: source,
                     interfaceIndex: link.index, scope: UInt8(route.scope))
    }

    /// The link named by hwAddr (preferred), name or device.
    static func findLink(_ interface: Grpc_Interface, _ links: [RouteNetlink.Link]) throws(AgentError) -> RouteNetlink.Link {
        if !interface.hwAddr.isEmpty, let link = links.first(where: { macText($0.mac) == interface.hwAddr.lowercased() }) {
            return link
        }
        for candidate in [interface.name, interface.device] where !candidate.isEmpty {
            if let link = links.first(where: { $0.name == candidate }) { return link }
        }
        throw .notFound("no interface \(interface.name) \(interface.hwAddr)")
    }

    static func macText(_ bytes: [UInt8]) -> String {
        bytes.map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined(separator: ":")
    }
}
