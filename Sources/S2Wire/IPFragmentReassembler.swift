import S2Model

/// Reassembles IPv4 and IPv6 fragments into datagrams, within fixed bounds: at most
/// `maxDatagrams` datagrams in progress, each at most 65,535 bytes, each dropped after
/// `timeoutSeconds` of capture time. A datagram that is dropped incomplete is counted in
/// `incompleteDropped` (the engine turns it into a `fragment-incomplete` anomaly).
///
/// Overlapping fragments: the first copy of each byte wins, as in TCP reassembly.
public final class IPFragmentReassembler {
    public struct Limits: Sendable {
        public var maxDatagrams = 1024
        public var timeoutSeconds: Int64 = 30
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
    }

    public let limits: Limits
    private var pending: [Key: Pending] = [:]
    private var order: [Key] = []
    /// Completed datagram, valid until the next `add` (a fixed buffer: nothing moves it).
    private let completed = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 8)
    public private(set) var incompleteDropped = 0
    /// Frames of dropped incomplete datagrams not yet reported (drained by the engine).
    public var droppedFrames: [FrameRef] = []

    public init(limits: Limits) { self.limits = limits }

    deinit { completed.deallocate() }

    public var inProgress: Int { pending.count }

    /// Adds one fragment; returns the whole datagram payload when this fragment completes it.
    func add(key: Key, offset: Int, more: Bool, bytes: UnsafeRawBufferPointer, frame: FrameRef) -> UnsafeRawBufferPointer? {
        expire(now: frame.time)
        let end = offset + bytes.count
        guard end <= 65_535 else { return nil }
        if pending[key] == nil {
            if pending.count >= limits.maxDatagrams, let oldest = order.first {
                drop(oldest)
            }
            pending[key] = Pending(buffer: [], covered: [], totalLength: nil, firstSeen: frame.time, firstFrame: frame)
            order.append(key)
        }
        var p = pending[key]!
        pending[key] = nil  // avoid copy-on-write while mutating
        if !more { p.totalLength = end }
        if p.buffer.count < end { p.buffer.append(contentsOf: repeatElement(0, count: end - p.buffer.count)) }
        // First copy wins: write only the parts not yet covered.
        var cursor = offset
        for r in p.covered where r.upperBound > cursor && r.lowerBound < end {
            if r.lowerBound > cursor { copy(bytes, from: cursor - offset, to: &p.buffer, at: cursor, count: r.lowerBound - cursor) }
            cursor = max(cursor, r.upperBound)
        }
        if cursor < end { copy(bytes, from: cursor - offset, to: &p.buffer, at: cursor, count: end - cursor) }
        p.covered = merge(p.covered, offset..<end)
        if let total = p.totalLength, p.covered.count == 1, p.covered[0] == 0..<total {
            order.removeAll { $0 == key }
            p.buffer.withUnsafeBytes { completed.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<total])) }
            return UnsafeRawBufferPointer(rebasing: completed[0..<total])
        }
        pending[key] = p
        return nil
    }

    private func copy(_ src: UnsafeRawBufferPointer, from: Int, to dst: inout [UInt8], at: Int, count: Int) {
        for i in 0..<count { dst[at + i] = src[from + i] }
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
        order.removeAll { $0 == key }
    }

    /// Drops datagrams older than the timeout.
    public func expire(now: Timestamp) {
        while let k = order.first, let p = pending[k], now.seconds - p.firstSeen.seconds > limits.timeoutSeconds {
            drop(k)
        }
    }

    /// Drops everything still pending (end of capture).
    public func flush() {
        for k in order { drop(k) }
    }
}
