/// Every bound the TCP reassembler keeps, in one place. Reaching one is never silent: it
/// produces a `limit-reached` anomaly (once per connection, or once per run for the flow table)
/// and a counter in `ReassemblyStatistics`.
public struct ReassemblyLimits: Sendable {
    /// Connections tracked at once; beyond it the least recently active one is evicted.
    public var maxConnections = 100_000
    /// Out-of-order bytes held per direction, waiting for a hole to fill. When full, the hole
    /// is declared a gap and the held bytes are delivered.
    public var maxOutOfOrderBytesPerDirection = 256 * 1024
    /// Out-of-order segments held per direction.
    public var maxOutOfOrderSegmentsPerDirection = 512
    /// Out-of-order bytes held by all connections together.
    public var maxOutOfOrderBytesTotal = 32 * 1024 * 1024
    /// Recently delivered bytes kept per direction so that a retransmission can be compared
    /// with the first copy (overlap-conflict detection).
    public var retainedBytesPerDirection = 4096
    /// A connection with no packet for this long (capture time) is closed as `timeout`.
    public var idleTimeoutSeconds: Double = 600
    /// A connection closed by FIN or RST is kept this long (capture time) to absorb
    /// retransmissions before a new SYN on the same addresses starts a new connection.
    public var closedLingerSeconds: Double = 30
    /// A direction whose stream offset passes this (4 EiB: no real stream) ends its connection.
    /// Acknowledgments that each jump ~2 GiB ahead move a stream that far after 2^31 packets (about
    /// 25 minutes of a 1 Gb/s link); the bound keeps every 64-bit offset from overflowing.
    public var maxStreamOffset: UInt64 = 1 << 62

    public init() {}
}

/// Counters for reports and metrics.
public struct ReassemblyStatistics: Sendable {
    public var segments = 0
    public var connectionsOpened = 0
    /// Connections opened without a captured SYN (picked up mid-stream).
    public var midstreamConnections = 0
    public var connectionsEvicted = 0
    public var gaps = 0
    public var gapBytes: UInt64 = 0
    /// Of the gaps, those that lie wholly in bytes the snap length cut off.
    public var snapLengthGaps = 0
    public var overlapConflicts = 0
    public var retransmittedSegments = 0
    public var ignoredSegments = 0
    public var limitHits = 0
    public var peakConnections = 0
    public var peakOutOfOrderBytes = 0
}
