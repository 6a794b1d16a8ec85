import Synchronization

/// A device reachable by guest port I/O or MMIO. `offset` is relative to the range the
/// device was registered at; `data` is exactly the access width (1, 2, 4 or 8 bytes).
/// Called on vCPU threads: implementations do the short synchronous part and hand
/// anything slow to the event loop.
public protocol BusDevice: AnyObject, Sendable {
    func read(offset: UInt64, data: UnsafeMutableRawBufferPointer)
    func write(offset: UInt64, data: UnsafeRawBufferPointer)
}

/// Why a device could not be placed on a bus.
public enum BusError: Error, CustomStringConvertible, Equatable {
    case overlap(base: UInt64, length: UInt64)
    case emptyRange

    public var description: String {
        switch self {
        case .overlap(let base, let length):
            return "bus range 0x\(String(base, radix: 16))+0x\(String(length, radix: 16)) overlaps another device"
        case .emptyRange:
            return "bus range has zero length"
        }
    }
}

/// An address space (the 64 KiB port space or the MMIO space) mapping ranges to devices.
/// Devices are registered before the vCPUs start; lookups are lock-free reads of an
/// immutable sorted array after that.
public final class Bus: @unchecked Sendable {  // `ranges` changes only in insert(), before the vCPUs start; read-only after
    public struct Range: Sendable {
        public let base: UInt64
        public let length: UInt64
        public let device: any BusDevice
    }

    private var ranges: [Range] = []

    public init() {}

    public func insert(_ device: any BusDevice, base: UInt64, length: UInt64) throws {
        guard length > 0 else { throw BusError.emptyRange }
        for r in ranges where base < r.base &+ r.length && r.base < base &+ length {
            throw BusError.overlap(base: base, length: length)
        }
        ranges.append(Range(base: base, length: length, device: device))
        ranges.sort { $0.base < $1.base }
    }

    /// The device covering `address` and the offset into it.
    @inline(__always)
    public func resolve(_ address: UInt64) -> (device: any BusDevice, offset: UInt64)? {
        var low = 0
        var high = ranges.count
        while low < high {
            let mid = (low + high) / 2
            let r = ranges[mid]
            if address < r.base {
                high = mid
            } else if address - r.base >= r.length {
                low = mid + 1
            } else {
                return (r.device, address - r.base)
            }
        }
        return nil
    }

    /// Dispatches a read; unclaimed addresses read as all ones, as on a real bus.
    /// Returns false when no device claimed the address.
    @discardableResult
    public func read(_ address: UInt64, _ data: UnsafeMutableRawBufferPointer) -> Bool {
        guard let (device, offset) = resolve(address) else {
            for i in data.indices { data[i] = 0xFF }
            return false
        }
        device.read(offset: offset, data: data)
        return true
    }

    @discardableResult
    public func write(_ address: UInt64, _ data: UnsafeRawBufferPointer) -> Bool {
        guard let (device, offset) = resolve(address) else { return false }
        device.write(offset: offset, data: data)
        return true
    }
}
