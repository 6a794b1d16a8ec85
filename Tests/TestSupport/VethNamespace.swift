import Foundation

/// A network namespace with one veth, its peer on the host with the subnet's .1, as a CNI
/// plugin leaves it for a container: what the runtime's tcfilter networking starts from.
/// Real `ip` commands; needs root.
public struct VethNamespace {
    public let name: String, hostEnd: String, containerEnd: String, subnet: String
    public var path: String { "/var/run/netns/\(name)" }
    public var hostAddress: String { subnet + ".1" }
    public var containerAddress: String { subnet + ".2" }
    /// With `ipv6`: the /64 both ends also have (prefix "fd42:1:2:3"), ::1 the host's.
    public let subnet6: String?
    public var hostAddress6: String? { subnet6.map { $0 + "::1" } }
    public var containerAddress6: String? { subnet6.map { $0 + "::2" } }
    /// The IPv6 prefix the container's namespace routes through the host's end.
    public static let routed6 = "fd43::/64"

    public static func ip(_ arguments: [String]) throws -> Command.Result { try Command.run("/usr/sbin/ip", arguments, timeout: 20) }

    /// `subnet`: the first three octets ("10.77.3"). `mtu` for the container's end; with
    /// `defaultRoute`, a default route via the host's end. `subnet6` adds an IPv6 /64 to both
    /// ends (no duplicate address detection, so it is usable at once) and a route through the
    /// host's end to `routed6`. Nil where no namespace can be made.
    public init?(subnet: String, mtu: Int? = nil, defaultRoute: Bool = false, subnet6: String? = nil) throws {
        let suffix = String(UUID().uuidString.prefix(6)).lowercased()
        name = "rtvm-\(suffix)"
        hostEnd = "rvh\(suffix)"
        containerEnd = "rvc\(suffix)"
        self.subnet = subnet
        self.subnet6 = subnet6
        guard try Self.ip(["netns", "add", name]).status == 0 else { return nil }
        var steps = [["link", "add", hostEnd, "type", "veth", "peer", "name", containerEnd],
                     ["link", "set", containerEnd, "netns", name],
                     ["addr", "add", hostAddress + "/24", "dev", hostEnd],
                     ["link", "set", hostEnd, "up"],
                     ["-n", name, "addr", "add", containerAddress + "/24", "dev", containerEnd]]
        if let mtu { steps.append(["-n", name, "link", "set", containerEnd, "mtu", String(mtu)]) }
        steps.append(["-n", name, "link", "set", containerEnd, "up"])
        if defaultRoute { steps.append(["-n", name, "route", "add", "default", "via", hostAddress]) }
        if let subnet6 {
            steps += [["addr", "add", subnet6 + "::1/64", "dev", hostEnd, "nodad"],
                      ["-n", name, "addr", "add", subnet6 + "::2/64", "dev", containerEnd, "nodad"],
                      ["-n", name, "-6", "route", "add", Self.routed6, "via", subnet6 + "::1", "dev", containerEnd]]
        }
        for step in steps {
            let result = try Self.ip(step)
            guard result.status == 0 else {
                remove()
                throw Fixtures.FixtureError("ip \(step.joined(separator: " ")): \(result.stderr)")
            }
        }
    }

    /// The container end's MAC address.
    public var containerMAC: String {
        let link = (try? Self.ip(["-n", name, "-o", "link", "show", containerEnd]))?.stdout ?? ""
        guard let range = link.range(of: "link/ether ") else { return "?" }
        return String(link[range.upperBound...].prefix(17))
    }

    /// `ip -o link` inside the namespace.
    public var links: String { (try? Self.ip(["-n", name, "-o", "link"]))?.stdout ?? "" }

    public func remove() {
        _ = try? Self.ip(["link", "del", hostEnd])
        _ = try? Self.ip(["netns", "del", name])
    }
}
