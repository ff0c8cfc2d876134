import S2Model

/// Reassembles IPv4 and IPv6 fragments into datagrams, within fixed bounds: at most
/// `maxDatagrams` datagrams in progress, each at most 65,535 bytes, each dropped after
/// `timeoutSeconds` of capture time. A datagram that is dropped incomplete is counted in
/// `incompleteDropped` (the engine turns it into a `fragment-incomplete` anomaly).
///
/// Overlapping fragments: the first copy of each byte wins, as in TCP reassembly. A datagram
/// whose fragments leave more than `maxPieces` separate pieces is dropped as incomplete (a real
/// one has at most 45: 65,535 bytes in 1,480-byte fragments), so no sender can make one fragment
/// cost more than a bounded amount of work. Every operation is O(1) amortised in the number of
/// datagrams in progress, so a flood of fragments that never complete costs no more per packet
/// than ordinary traffic.
public final class IPFragmentReassembler {
    public struct Limits: Sendable {
        public var maxDatagrams = 1024
        public var timeoutSeconds: Int64 = 30
        public var maxPieces = 64
        public init() {}
    }

    struct Key: Hashable {
        var source: IPAddress
        var destination: IPAddress
        var identification: UInt32
        var protocolNumber: UInt8
    }

    private struct Pending {
        var buffer: [UInt8]
        /// Sorted, non-overlapping covered ranges.
        var covered: [Range<Int>]
        var totalLength: Int?
        var firstSeen: Timestamp
        var firstFrame: FrameRef
        /// Matches this datagram's entry in `order` (a key may come back after it was dropped).
        var generation: UInt64
    }

    /// The largest IP datagram (the IPv4 total length and the IPv6 payload length are 16 bits).
    static let maxDatagram = 65_535

    public let limits: Limits
    private var pending: [Key: Pending] = [:]
    /// Datagrams in arrival order, oldest from `orderHead` on. Entries of datagrams that completed
    /// or were dropped stay until they reach the head (skipped there) or the list is compacted.
    private var order: [(key: Key, generation: UInt64)] = []
    private var orderHead = 0
    private var generation: UInt64 = 0
    /// Completed datagram, valid until the next `add` (a fixed buffer: nothing moves it).
    private let completed = UnsafeMutableRawBufferPointer.allocate(byteCount: maxDatagram, alignment: 8)
    public private(set) var incompleteDropped = 0
    /// Frames of dropped incomplete datagrams not yet reported (drained by the engine).
    public var droppedFrames: [FrameRef] = []

    public init(limits: Limits) { self.limits = limits }

    deinit { completed.deallocate() }

    public var inProgress: Int { pending.count }

    /// Adds one fragment; returns the whole datagram payload when this fragment completes it.
    /// Fragments that would end beyond 65,535 bytes are refused (nil; the decoder reports them
    /// as malformed before they get here).
    func add(key: Key, offset: Int, more: Bool, bytes: WireBytes, frame: FrameRef) -> WireBytes? {
        expire(now: frame.time)
        guard offset >= 0, bytes.count <= IPFragmentReassembler.maxDatagram - offset else { return nil }
        let end = offset + bytes.count
        var p: Pending
        if let existing = pending.removeValue(forKey: key) {
            p = existing  // taken out of the table: mutated without a copy-on-write
        } else {
            if pending.count >= limits.maxDatagrams, let oldest = oldestInProgress() {
                drop(oldest)
            }
            generation &+= 1
            p = Pending(buffer: [], covered: [], totalLength: nil, firstSeen: frame.time, firstFrame: frame, generation: generation)
            order.append((key, generation))
            compactOrder()
        }
        if !more { p.totalLength = end }
        if p.buffer.count < end { p.buffer += [UInt8](repeating: 0, count: end - p.buffer.count) }
        // First copy wins: write only the parts not yet covered.
        var cursor = offset
        let covered = p.covered
        p.buffer.withUnsafeMutableBytes { buffer in
            for r in covered where r.upperBound > cursor && r.lowerBound < end {
                if r.lowerBound > cursor {
                    bytes.slice(from: cursor - offset, to: r.lowerBound - offset)?.copy(into: buffer, at: cursor)
                }
                cursor = max(cursor, r.upperBound)
            }
            if cursor < end { bytes.suffix(from: cursor - offset)?.copy(into: buffer, at: cursor) }
        }
        p.covered = merge(p.covered, offset..<end)
        if p.covered.count > limits.maxPieces {
            pending[key] = p
            drop(key)
            return nil
        }
        if let total = p.totalLength, p.covered.count == 1, p.covered[0] == 0..<total {
            let done = p.buffer.withWireBytes { $0.prefix(total).copy(into: completed, at: 0) }
            return done ? WireBytes(UnsafeRawBufferPointer(completed)).prefix(total) : nil
        }
        pending[key] = p
        return nil
    }

    private func merge(_ ranges: [Range<Int>], _ r: Range<Int>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var cur = r
        for x in ranges {
            if x.upperBound < cur.lowerBound || x.lowerBound > cur.upperBound {
                out.append(x)
            } else {
                cur = min(x.lowerBound, cur.lowerBound)..<max(x.upperBound, cur.upperBound)
            }
        }
        out.append(cur)
        return out.sorted { $0.lowerBound < $1.lowerBound }
    }

    private func drop(_ key: Key) {
        if let p = pending.removeValue(forKey: key) {
            incompleteDropped += 1
            if droppedFrames.count < 1000 { droppedFrames.append(p.firstFrame) }
        }
    }

    /// The oldest datagram still in progress; entries of finished ones at the head are passed.
    private func oldestInProgress() -> Key? {
        while orderHead < order.count {
            let e = order[orderHead]
            if let p = pending[e.key], p.generation == e.generation { return e.key }
            orderHead += 1
        }
        return nil
    }

    /// Keeps `order` within a constant factor of the datagrams in progress.
    private func compactOrder() {
        if orderHead > 1024 && orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        } else if order.count - orderHead > 4 * limits.maxDatagrams + 1024 {
            // Finished datagrams behind a long-lived one: keep only the live entries.
            order = order[orderHead...].filter { e in pending[e.key].map { $0.generation == e.generation } ?? false }
            orderHead = 0
        }
    }

    /// Drops datagrams older than the timeout.
    public func expire(now: Timestamp) {
        while let k = oldestInProgress(), let p = pending[k], now.seconds - p.firstSeen.seconds > limits.timeoutSeconds {
            drop(k)
        }
    }

    /// Drops everything still pending (end of capture), oldest first.
    public func flush() {
        while let k = oldestInProgress() { drop(k) }
        order = []
        orderHead = 0
    }
}
