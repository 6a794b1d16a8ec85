import Foundation

/// A network namespace with one veth, its peer on the host with the subnet's .1, as a CNI
/// plugin leaves it for a container: what the runtime's tcfilter networking starts from.
/// Real `ip` commands; needs root.
public struct VethNamespace {
    public let name: String, hostEnd: String, containerEnd: String, subnet: String
    public var path: String { "/var/run/netns/\(name)" }
    public var hostAddress: String { subnet + ".1" }
    public var containerAddress: String { subnet + ".2" }

    public static func ip(_ arguments: [String]) throws -> Command.Result { try Command.run("/usr/sbin/ip", arguments, timeout: 20) }

    /// `subnet`: the first three octets ("10.77.3"). `mtu` for the container's end; with
    /// `defaultRoute`, a default route via the host's end. Nil where no namespace can be made.
    public init?(subnet: String, mtu: Int? = nil, defaultRoute: Bool = false) throws {
        let suffix = String(UUID().uuidString.prefix(6)).lowercased()
        name = "rtvm-\(suffix)"
        hostEnd = "rvh\(suffix)"
        containerEnd = "rvc\(suffix)"
        self.subnet = subnet
        guard try Self.ip(["netns", "add", name]).status == 0 else { return nil }
        var steps = [["link", "add", hostEnd, "type", "veth", "peer", "name", containerEnd],
                     ["link", "set", containerEnd, "netns", name],
                     ["addr", "add", hostAddress + "/24", "dev", hostEnd],
                     ["link", "set", hostEnd, "up"],
                     ["-n", name, "addr", "add", containerAddress + "/24", "dev", containerEnd]]
        if let mtu { steps.append(["-n", name, "link", "set", containerEnd, "mtu", String(mtu)]) }
        steps.append(["-n", name, "link", "set", containerEnd, "up"])
        if defaultRoute { steps.append(["-n", name, "route", "add", "default", "via", hostAddress]) }
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
