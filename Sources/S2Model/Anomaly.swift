/// Capture and transport problems: not protocol violations, but reasons why what follows
/// may be incomplete. Kept apart from rule violations (as Zeek keeps weirds apart from notices).
public enum AnomalyKind: String, Sendable, CaseIterable {
    /// Bytes of a TCP direction were never seen (lost or not captured); reported with the size.
    case gap
    /// A retransmitted copy of bytes differs from the first copy (the first copy is kept).
    case overlapConflict = "overlap-conflict"
    /// A packet was cut by the capture's snap length; its missing bytes are not trusted.
    case truncatedPacket = "truncated-packet"
    /// The capture starts in the middle of a connection (no SYN seen).
    case midstreamPickup = "midstream-pickup"
    /// Only one direction of a connection was ever seen.
    case oneSided = "one-sided"
    /// The XML parser lost the stream (after a gap or an error) and resynchronised further on.
    case xmlDesync = "xml-desync"
    /// A packet could not be decoded (bad header lengths, unknown link type…).
    case malformedPacket = "malformed-packet"
    /// The capture file ends in the middle of a record.
    case truncatedCapture = "truncated-capture"
    /// A resource cap was reached (flows, buffered bytes, fragments, element size…).
    case limitReached = "limit-reached"
    /// A connection was idle longer than the flow timeout and was flushed.
    case flowTimeout = "flow-timeout"
    /// Traffic after STARTTLS is encrypted and was not analysed.
    case encrypted = "encrypted"
    /// IP fragments that never completed a datagram.
    case fragmentIncomplete = "fragment-incomplete"
    /// The capture reported packets dropped by the kernel or interface.
    case captureDrops = "capture-drops"
    /// A direction on the s2s port carries another protocol (HTTP, SSH…), not XML: not analysed.
    case notXMPP = "not-xmpp"
    /// Live capture on an interface stopped (it went down, lost its carrier, disappeared, a read
    /// failed) or resumed: what crossed it in between was not seen.
    case captureInterrupted = "capture-interrupted"
    /// Live output: events were not written (disk full, closed pipe) between a write failure and the
    /// reopening of the output; the analysis went on.
    case outputFailed = "output-failed"
}

/// One anomaly, pointing back at the frame where it was noticed.
public struct Anomaly: Sendable, Hashable {
    public var kind: AnomalyKind
    public var connection: ConnectionID?
    public var direction: Direction?
    public var frame: FrameRef?
    public var message: String
    /// Size in bytes where it applies (gap size, skipped bytes…).
    public var bytes: UInt64?
    /// When it was noticed, for anomalies that no frame carries (live capture and output events).
    public var time: Timestamp?

    public init(kind: AnomalyKind, connection: ConnectionID? = nil, direction: Direction? = nil,
                frame: FrameRef? = nil, bytes: UInt64? = nil, time: Timestamp? = nil, message: String) {
        self.kind = kind
        self.time = time
        self.connection = connection
        self.direction = direction
        self.frame = frame
        self.bytes = bytes
        self.message = message
    }
}
