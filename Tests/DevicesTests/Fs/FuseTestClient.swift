import Foundation
import TestSupport
import VMM
@testable import Devices

/// What Linux's fs/fuse/virtio_fs.c puts on a request queue, played through
/// `VirtioTestDriver`: one readable buffer (fuse_in_header and the operation's input)
/// and one writable buffer (fuse_out_header and the reply), answered by the backend
/// straight from guest memory.
struct FuseTestClient {
    enum Opcode: UInt32 {
        case lookup = 1, getattr = 3, open = 14, read = 15, write = 16, release = 18, initialize = 26
    }

    struct Reply {
        var error: Int32
        var body: [UInt8]
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static let rootNode: UInt64 = 1
    let driver: VirtioTestDriver
    let queue: Int
    private let input: UInt64
    private let output: UInt64
    static let bufferSize = 128 << 10
    private var unique: UInt64 = 0

    init(driver: VirtioTestDriver, queue: Int = 1) {
        self.driver = driver
        self.queue = queue
        input = driver.allocate(Self.bufferSize, align: 4096)
        output = driver.allocate(Self.bufferSize, align: 4096)
    }

    /// Sends one request and waits (the backend runs in its own process) for its reply.
    mutating func call(_ opcode: Opcode, node: UInt64 = rootNode, _ argument: [UInt8] = [], replyCapacity: Int = 4096,
                       timeout: Double = 10) throws -> Reply {
        unique += 2
        var header: [UInt8] = []
        header.appendLE(UInt32(40 + argument.count))
        header.appendLE(opcode.rawValue)
        header.appendLE(unique)
        header.appendLE(node)
        header += [UInt8](repeating: 0, count: 16)  // uid, gid, pid (root), total_extlen, padding
        try driver.memory.write(header + argument, at: input)
        driver.fill(output, 16, with: 0xEE)
        let head = try driver.add([.readable(input, UInt32(40 + argument.count)), .writable(output, UInt32(16 + replyCapacity))],
                                  queue: queue)
        driver.kick(queue)
        let deadline = Date().addingTimeInterval(timeout)
        var used: [(id: UInt32, len: UInt32)] = []
        while used.isEmpty {
            guard Date() < deadline else { throw Failure(description: "no reply to \(opcode) within \(timeout) s") }
            _ = driver.loop?.runOnce(timeoutMs: 1)
            used = driver.getUsed(queue)
        }
        guard used.count == 1, used[0].id == UInt32(head) else { throw Failure(description: "used \(used) for head \(head)") }
        let out = driver.bytes(output, 16)
        let length = Int(out.loadLE(UInt32.self, at: 0))
        let error = Int32(bitPattern: out.loadLE(UInt32.self, at: 4))
        guard out.loadLE(UInt64.self, at: 8) == unique else { throw Failure(description: "reply to request \(out.loadLE(UInt64.self, at: 8)), not \(unique)") }
        guard length >= 16, length <= 16 + replyCapacity, Int(used[0].len) == length else {
            throw Failure(description: "reply of \(length) bytes, used length \(used[0].len)")
        }
        return Reply(error: error, body: driver.bytes(output + 16, length - 16))
    }

    /// FUSE_INIT as Linux 6.x sends it (7.36, 64 bytes of fuse_init_in); returns the
    /// backend's (major, minor).
    mutating func initialize() throws -> (major: UInt32, minor: UInt32) {
        var argument: [UInt8] = []
        argument.appendLE(UInt32(7))
        argument.appendLE(UInt32(36))
        argument.appendLE(UInt32(128 << 10))  // max_readahead
        argument += [UInt8](repeating: 0, count: 64 - 12)
        let reply = try call(.initialize, argument)
        guard reply.error == 0, reply.body.count >= 8 else { throw Failure(description: "FUSE_INIT: error \(reply.error)") }
        return (reply.body.loadLE(UInt32.self, at: 0), reply.body.loadLE(UInt32.self, at: 4))
    }

    /// LOOKUP in the root: the reply's error (a negative errno, or 0), node id and size.
    mutating func lookup(_ name: String) throws -> (error: Int32, node: UInt64, size: UInt64) {
        let reply = try call(.lookup, Array(name.utf8) + [0])
        guard reply.error == 0 else { return (reply.error, 0, 0) }
        // fuse_entry_out: nodeid, generation, entry/attr valid (u64 each, u32 each), then fuse_attr (ino, size, ...).
        guard reply.body.count >= 128 else { throw Failure(description: "LOOKUP: a reply of \(reply.body.count) bytes") }
        return (0, reply.body.loadLE(UInt64.self, at: 0), reply.body.loadLE(UInt64.self, at: 40 + 8))
    }

    mutating func open(_ node: UInt64, flags: UInt32) throws -> UInt64 {
        var argument: [UInt8] = []
        argument.appendLE(flags)
        argument.appendLE(UInt32(0))
        let reply = try call(.open, node: node, argument)
        guard reply.error == 0 else { throw Failure(description: "OPEN: error \(reply.error)") }
        return reply.body.loadLE(UInt64.self, at: 0)
    }

    mutating func read(_ node: UInt64, handle: UInt64, offset: UInt64, size: Int) throws -> [UInt8] {
        let reply = try call(.read, node: node, ioArgument(handle: handle, offset: offset, size: size), replyCapacity: size)
        guard reply.error == 0 else { throw Failure(description: "READ: error \(reply.error)") }
        return reply.body
    }

    mutating func write(_ node: UInt64, handle: UInt64, offset: UInt64, _ data: [UInt8]) throws -> Int {
        let reply = try call(.write, node: node, ioArgument(handle: handle, offset: offset, size: data.count) + data)
        guard reply.error == 0, reply.body.count >= 4 else { throw Failure(description: "WRITE: error \(reply.error)") }
        return Int(reply.body.loadLE(UInt32.self, at: 0))
    }

    /// fuse_read_in / fuse_write_in: fh, offset, size, flags, lock_owner, flags, padding.
    private func ioArgument(handle: UInt64, offset: UInt64, size: Int) -> [UInt8] {
        var argument: [UInt8] = []
        argument.appendLE(handle)
        argument.appendLE(offset)
        argument.appendLE(UInt32(size))
        argument += [UInt8](repeating: 0, count: 4 + 8 + 8)
        return argument
    }
}
