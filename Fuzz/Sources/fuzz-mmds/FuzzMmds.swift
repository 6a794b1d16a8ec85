import FuzzSupport
import Synchronization
@testable import Devices

// The metadata service's network stack as a hostile guest drives it. The input is a
// sequence of steps (a byte each says which):
//   0: a raw frame: u16 length, u8 (bit 0: checksum left to the device), bytes
//   1: a TCP segment the harness builds with valid headers and checksum: u8 port (of 8),
//      u8 flags, u8 ack mode (0: the input's u32, 1: everything the stack sent, 2: one
//      less), u8 seq mode (0: in order, 1: the input's u32), u16 window, u8 MSS option
//      (0: none), u8 data length, data
//   2: read u8 frames of the stack's output (the guest's RX buffers arriving late)
//   3: advance the clock by u8 seconds (token lifetimes)
// Every output frame must parse with correct checksums, the connection table and the
// output must stay bounded, and nothing may trap.

final class Store: MmdsDataSource {
    func lookup(pointer: String, json: Bool) -> MmdsLookup {
        switch pointer {
        case "": return .value(json ? "{\"a\":{\"b\":\"c\"}}" : "a/")
        case "/a": return .value(json ? "{\"b\":\"c\"}" : "b")
        case "/a/b": return .value("c")
        case "/big": return .value(String(repeating: "z", count: 9000))
        case "/n": return json ? .value("1") : .unsupportedInImds
        default: return .notFound
        }
    }
}

let clock = Atomic<UInt64>(1)
let store = Store()
let guestMac: UInt64 = 0x02_00_00_00_00_01
let guestIp: UInt32 = 0x0A_00_00_02
let mmdsIp = MmdsConfig.defaultAddress

@_cdecl("fuzz_mmds_main")
public func fuzzMain(_ argc: Int32, _ argv: FuzzArguments) -> Int32 { runFuzzer(argc, argv, fuzzOneInput) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let version: MmdsConfig.Version = input.u8() & 1 == 0 ? .v1 : .v2
    let mtu = UInt16(576) + UInt16(input.u8()) * 4
    let service = MmdsService(config: MmdsConfig(version: version, networkInterfaces: ["eth0"]), source: store,
                              clock: { clock.load(ordering: .relaxed) })
    let stack = MmdsNetworkStack(service: service, mtu: mtu)
    var guestSeq = [UInt32](repeating: 1000, count: 8)
    var stackNext = [UInt32](repeating: 0, count: 8)
    var out = [UInt8](repeating: 0, count: 70_000)

    func pull(_ limit: Int) {
        var count = 0
        while count < limit, let n = out.withUnsafeMutableBytes({ stack.nextFrame(into: $0) }) {
            count += 1
            precondition(n >= 42 && n <= Int(mtu) + 14, "a frame of \(n) bytes for an MTU of \(mtu)")
            out.withUnsafeBytes { b in
                let frame = UnsafeRawBufferPointer(rebasing: b[0..<n])
                if NetworkHeaders.u16(frame, 12) == NetworkHeaders.etherTypeArp { return }
                guard let ip = NetworkHeaders.ipv4(frame), let tcp = NetworkHeaders.tcp(frame, ip, verifyChecksum: true) else {
                    preconditionFailure("the stack sent a frame that does not parse")
                }
                let port = Int(tcp.destinationPort &- 40_000)
                if port >= 0 && port < 8 {
                    var end = tcp.seq &+ UInt32(tcp.dataLength)
                    if tcp.flags.contains(.syn) || tcp.flags.contains(.fin) { end &+= 1 }
                    if Int32(bitPattern: end &- stackNext[port]) > 0 || stackNext[port] == 0 { stackNext[port] = end }
                }
            }
        }
        precondition(count < 10_000, "the stack's output did not end")
    }

    var steps = 0
    while !input.isAtEnd && steps < 400 {
        steps += 1
        switch input.u8() % 4 {
        case 0:
            let length = Int(input.u16() % 2048)
            let partial = input.u8() & 1 == 1
            let frame = input.take(length)
            frame.withUnsafeBytes { stack.receive($0, checksumPartial: partial) }
        case 1:
            let port = Int(input.u8() % 8)
            let flags = NetworkHeaders.TcpFlags(rawValue: input.u8() & 0x1F)
            let ackMode = input.u8() % 3
            let inputAck = input.u32()
            let ack = ackMode == 0 ? inputAck : ackMode == 1 ? stackNext[port] : stackNext[port] &- 1
            let seqMode = input.u8() & 1
            let inputSeq = input.u32()
            let window = input.u16()
            let mssByte = input.u8()
            let mss: UInt16? = mssByte == 0 ? nil : UInt16(mssByte) * 8
            let payload = input.take(Int(input.u8()))
            let seq = seqMode == 0 ? guestSeq[port] : inputSeq
            let offset = NetworkHeaders.tcpDataOffset(syn: mss != nil)
            var frame = [UInt8](repeating: 0, count: offset + payload.count)
            frame.replaceSubrange(offset..<offset + payload.count, with: payload)
            frame.withUnsafeMutableBytes { b in
                _ = NetworkHeaders.writeTcp(b, to: MmdsNetworkStack.ownMac, from: guestMac, source: (guestIp, UInt16(40_000 + port)),
                                            destination: (mmdsIp, 80), seq: seq, ack: ack, flags: flags, window: window,
                                            mss: mss, dataLength: payload.count)
            }
            frame.withUnsafeBytes { stack.receive($0, checksumPartial: false) }
            if seqMode == 0 {
                guestSeq[port] &+= UInt32(payload.count)
                if flags.contains(.syn) || flags.contains(.fin) { guestSeq[port] &+= 1 }
            }
        case 2:
            pull(Int(input.u8()))
        default:
            clock.add(UInt64(input.u8()) * 1_000_000_000, ordering: .relaxed)
        }
        precondition(stack.connectionCount <= MmdsNetworkStack.maxConnections)
    }
    pull(10_000)
    return 0
}
