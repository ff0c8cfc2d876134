import S2Model
import S2Wire

/// How a connection ended, as the report contract names it (`reused` and `evicted` are
/// S2Scope's additions; the report maps them onto the contract's words).
public enum CloseReason: String, Sendable {
    case fin, rst, timeout, open, reused, evicted
}

/// One TCP connection, identified by its 4-tuple and the SYN that opened it.
///
/// The initiator ("client") is the side that sent the SYN; without a SYN it is the side not
/// using an s2s port. Consumers hang their per-connection state on `context`, so that the hot
/// path needs no second table lookup.
public final class TCPConnection {
    public let id: ConnectionID
    public let client: Endpoint
    public let server: Endpoint
    public let firstFrame: FrameRef
    public var lastFrame: FrameRef { _lastFrame }
    var _lastFrame: FrameRef
    /// Set once the connection ended (or the capture did); nil while it is open.
    public var closeReason: CloseReason? { _closeReason }
    var _closeReason: CloseReason?
    /// True when the capture holds the connection's SYN or SYN-ACK.
    public var sawHandshake: Bool { _sawHandshake }
    var _sawHandshake: Bool
    public internal(set) var sawFIN = false
    /// When the connection was closed: its last frame's time for FIN/RST and the end of the
    /// capture, the time of the decision for an idle timeout or an eviction.
    public internal(set) var closedAt: Timestamp?
    public internal(set) var sawRST = false
    /// The consumer's state for this connection.
    public var context: AnyObject?

    /// Both directions' reassembly state, in one allocation the connection owns (`PinnedValue`):
    /// their arrays grow inside the accesses, so a stored `var` kept its run-time exclusivity check,
    /// the reassembler's most frequent (two million per 100 MB of capture). Only the reassembler
    /// touches them, one access at a time (`withHalf`).
    private let halves = PinnedValue(repeating: HalfStream(), count: 2)
    var c2s: HalfStream {
        unsafeAddress { UnsafePointer(halves.pointer) }
        unsafeMutableAddress { halves.pointer }
    }
    var s2c: HalfStream {
        unsafeAddress { UnsafePointer(halves.pointer + 1) }
        unsafeMutableAddress { halves.pointer + 1 }
    }
    var clientISN: UInt32?
    var lastSeen: Timestamp
    var queuedAt: Timestamp
    var removed = false
    var limitReported = false

    init(id: ConnectionID, client: Endpoint, server: Endpoint, frame: FrameRef, handshake: Bool) {
        self.id = id
        self.client = client
        self.server = server
        firstFrame = frame
        _lastFrame = frame
        _sawHandshake = handshake
        lastSeen = frame.time
        queuedAt = frame.time
    }

    /// Packets seen in each direction.
    public func packets(_ d: Direction) -> Int { d == .clientToServer ? c2s.packets : s2c.packets }
    /// Payload bytes delivered in each direction.
    public func bytesDelivered(_ d: Direction) -> UInt64 { d == .clientToServer ? c2s.delivered : s2c.delivered }
    /// Bytes declared missing (gaps) in each direction.
    public func bytesMissing(_ d: Direction) -> UInt64 { d == .clientToServer ? c2s.missing : s2c.missing }
    public var isClosed: Bool { closeReason != nil }
    /// Whether offset 0 of direction `d` is the first byte its sender ever sent (the SYN or
    /// SYN-ACK was captured). Otherwise the capture picked the direction up mid-stream.
    /// Whether the sender of direction `d` sent a FIN.
    public func finSeen(_ d: Direction) -> Bool { d == .clientToServer ? c2s.finOffset != nil : s2c.finOffset != nil }
    public func streamStartSeen(_ d: Direction) -> Bool { d == .clientToServer ? c2s.startSeen : s2c.startSeen }
    /// The TCP sequence number of stream offset 0 of direction `d` (its ISN + 1), when its SYN was
    /// seen: with the 4-tuple, what names the connection to any other sensor that saw it.
    public func firstSequence(_ d: Direction) -> UInt32? {
        d == .clientToServer ? (c2s.startSeen ? c2s.space.base : nil) : (s2c.startSeen ? s2c.space.base : nil)
    }

    @inline(__always)
    func withHalf<R>(_ d: Direction, _ body: (inout HalfStream) -> R) -> R {
        d == .clientToServer ? body(&c2s) : body(&s2c)
    }
}

/// Bytes that arrived ahead of a hole, waiting for it to fill.
struct HeldSegment {
    var offset: UInt64
    var bytes: [UInt8]
    var frame: FrameRef
    var end: UInt64 { offset + UInt64(bytes.count) }
}

/// Reassembly state of one direction.
struct HalfStream {
    /// Stream ranges the snap length cut off and no gap has covered yet, sorted and merged
    /// (at most `maxSnapCuts`: beyond, the oldest are forgotten and their holes report as gaps).
    var snapCuts: [Range<UInt64>] = []
    static let maxSnapCuts = 64

    mutating func noteSnapCut(_ r: Range<UInt64>) {
        guard !r.isEmpty, r.lowerBound >= next else { return }
        var i = snapCuts.count
        while i > 0 && snapCuts[i - 1].lowerBound > r.lowerBound { i -= 1 }
        snapCuts.insert(r, at: i)
        // Merge neighbours that touch or overlap.
        var merged: [Range<UInt64>] = []
        for x in snapCuts {
            if let last = merged.last, x.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, x.upperBound)
            } else {
                merged.append(x)
            }
        }
        snapCuts = merged.count > HalfStream.maxSnapCuts ? Array(merged.suffix(HalfStream.maxSnapCuts)) : merged
    }

    /// Whether the hole `r` lies wholly in cut-off bytes; ranges up to its end are dropped.
    mutating func snapCutCovers(_ r: Range<UInt64>) -> Bool {
        let covered = snapCuts.contains { $0.lowerBound <= r.lowerBound && r.upperBound <= $0.upperBound }
        snapCuts.removeAll { $0.upperBound <= r.upperBound }
        return covered
    }

    var started = false
    /// The direction's first byte is known to be its stream's first byte (its SYN was seen).
    var startSeen = false
    var space = SequenceSpace()
    /// Next stream offset to deliver; everything below it was delivered or declared a gap.
    var next: UInt64 = 0
    var finOffset: UInt64?
    var finished = false
    var packets = 0
    var delivered: UInt64 = 0
    var missing: UInt64 = 0
    /// Sorted, non-overlapping.
    var held: [HeldSegment] = []
    var heldBytes = 0
    /// A ring of the last delivered bytes: byte at stream offset `o` sits at `o % ring.count`;
    /// the `ringFilled` bytes before `next` are valid (for overlap comparison).
    var ring: [UInt8] = []
    var ringFilled = 0
    /// False after a gap: the ring no longer ends at `next`.
    var retainedValid = true
}

/// Canonical (direction-independent) key of a 4-tuple.
struct FlowKey: Hashable {
    var a: Endpoint
    var b: Endpoint
    init(_ x: Endpoint, _ y: Endpoint) {
        if x < y { a = x; b = y } else { a = y; b = x }
    }
}
