/// A FIFO over an array that does not shift its elements on every removal.
struct VsockDeque<Element> {
    private var items: [Element] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }
    var first: Element? { isEmpty ? nil : items[head] }

    mutating func append(_ element: Element) { items.append(element) }

    @discardableResult
    mutating func removeFirst() -> Element {
        let element = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64, head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return element
    }

    mutating func removeAll() {
        items.removeAll()
        head = 0
    }
}

/// Bytes the guest sent that the host socket has not taken yet.
struct VsockByteQueue {
    private var storage: [UInt8] = []
    private var start = 0

    var count: Int { storage.count - start }
    var isEmpty: Bool { start == storage.count }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        storage.append(contentsOf: bytes)
    }

    /// Appends `pieces` after skipping their first `skip` bytes.
    mutating func append(_ pieces: [UnsafeMutableRawBufferPointer], skipping skip: Int) {
        var skip = skip
        for piece in pieces {
            if skip >= piece.count {
                skip -= piece.count
                continue
            }
            append(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(piece)[skip...]))
            skip = 0
        }
    }

    func withFront<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        storage.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[start...])) }
    }

    mutating func drop(_ n: Int) {
        start += n
        if start >= storage.count {
            storage.removeAll(keepingCapacity: true)
            start = 0
        } else if start >= 1 << 16, start * 2 >= storage.count {
            storage.removeFirst(start)
            start = 0
        }
    }

    mutating func removeAll() {
        storage = []
        start = 0
    }
}
