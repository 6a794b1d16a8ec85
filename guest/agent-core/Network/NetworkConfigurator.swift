#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import AgentProtocol
import CAgentSpawn

/// UpdateInterface and UpdateRoutes for IPv4, through the classic ioctls (SIOCSIFADDR,
/// SIOCSIFNETMASK, SIOCSIFMTU, SIOCSIFFLAGS, SIOCSIFNAME, SIOCADDRT): one address per
/// interface.
/// IPv6 needs rtnetlink and is answered INVALID_ARGUMENT ("not supported").
enum NetworkConfigurator {
    static func update(_ interface: Grpc_Interface) throws(AgentError) -> Grpc_Interface {
        var name = try findInterface(interface)
        let v4 = interface.ipaddresses.filter { $0.family == .v4 }
        guard v4.count == interface.ipaddresses.count else { throw .invalid("IPv6 addresses are not supported") }
        guard v4.count <= 1 else { throw .invalid("one IPv4 address per interface is supported") }
        guard interface.mtu <= 65535 else { throw .invalid("bad MTU \(interface.mtu)") }
        // Everything is checked before the interface is touched.
        var address: (UInt32, Int)?
        if let first = v4.first {
            let ip = try parseIPv4(first.address)
            guard let prefix = Int(first.mask.isEmpty ? "32" : first.mask), prefix >= 0, prefix <= 32 else {
                throw .invalid("bad prefix length \(first.mask)")
            }
            address = (ip, prefix)
        }
        // The guest's interface takes the veth's name, as Kata's agent does, so that the
        // routes (which name the veth) and the container see what the namespace had.
        if !interface.name.isEmpty && interface.name != name {
            guard interface.name.utf8.count < 16, !interface.name.contains("/"), interface.name != ".", interface.name != ".." else {
                throw .invalid("bad interface name \(interface.name)")
            }
            guard agent_if_rename(name, interface.name) == 0 else { throw .errno("rename \(name) to \(interface.name)") }
            name = interface.name
        }
        if interface.mtu > 0 {
            guard agent_if_set_mtu(name, Int32(interface.mtu)) == 0 else { throw .errno("set mtu of \(name)") }
        }
        if let (ip, prefix) = address {
            guard agent_if_add_ipv4(name, ip.bigEndian, netmask(prefix).bigEndian) == 0 else { throw .errno("set address of \(name)") }
        }
        guard agent_if_up(name) == 0 else { throw .errno("bring up \(name)") }
        var applied = interface
        applied.name = name
        applied.device = name
        return applied
    }

    static func update(_ routes: Grpc_Routes) throws(AgentError) -> Grpc_Routes {
        for route in routes.routes {
            var destination: UInt32 = 0
            var prefix = 0
            if !route.dest.isEmpty && route.dest != "default" {
                let parts = route.dest.split(separator: "/")
                guard let address = parts.first else { throw .invalid("bad route destination \(route.dest)") }
                destination = try parseIPv4(String(address))
                prefix = parts.count > 1 ? (Int(parts[1]) ?? -1) : 32
                guard prefix >= 0 && prefix <= 32 else { throw .invalid("bad route destination \(route.dest)") }
            }
            let gateway = route.gateway.isEmpty ? 0 : try parseIPv4(route.gateway)
            guard route.device.utf8.count < 16 else { throw .invalid("bad device name \(route.device)") }
            if agent_route_add_ipv4(destination.bigEndian, netmask(prefix).bigEndian, gateway.bigEndian, route.device) != 0 && errno != EEXIST {
                throw .errno("add route \(route.dest) via \(route.gateway) dev \(route.device)")
            }
        }
        return routes
    }

    /// The interface named by hwAddr (preferred), name or device.
    private static func findInterface(_ interface: Grpc_Interface) throws(AgentError) -> String {
        if !interface.hwAddr.isEmpty, let directory = opendir("/sys/class/net") {
            defer { closedir(directory) }
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
                if name.hasPrefix(".") { continue }
                if readSmallFile("/sys/class/net/\(name)/address")?.trimmingWhitespace().lowercased() == interface.hwAddr.lowercased() {
                    return name
                }
            }
        }
        for candidate in [interface.name, interface.device] where !candidate.isEmpty {
            guard candidate.utf8.count < 16, !candidate.contains("/") else { throw .invalid("bad interface name \(candidate)") }
            if access("/sys/class/net/\(candidate)", F_OK) == 0 { return candidate }
        }
        throw .notFound("no interface \(interface.name) \(interface.hwAddr)")
    }

    static func parseIPv4(_ text: String) throws(AgentError) -> UInt32 {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { throw .invalid("not an IPv4 address: \(text)") }
        var value: UInt32 = 0
        for part in parts {
            guard let byte = UInt8(part) else { throw .invalid("not an IPv4 address: \(text)") }
            value = value << 8 | UInt32(byte)
        }
        return value
    }

    static func netmask(_ prefix: Int) -> UInt32 {
        prefix == 0 ? 0 : UInt32.max << UInt32(32 - prefix)
    }
}
