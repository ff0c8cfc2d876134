import S2Dialback
import S2Model
import S2Rules

/// One input file as the report describes it.
public struct InputSummary: Sendable {
    public var path: String
    public var format: String
    public var linkType: String
    public var packets: Int
    public var bytes: Int64
    public var truncated: Bool
    public var note: String?

    public init(path: String, format: String, linkType: String, packets: Int, bytes: Int64, truncated: Bool, note: String? = nil) {
        self.path = path
        self.format = format
        self.linkType = linkType
        self.packets = packets
        self.bytes = bytes
        self.truncated = truncated
        self.note = note
    }
}

/// Counters about the run.
public struct RunStatistics: Sendable {
    public var packets = 0
    public var bytes: Int64 = 0
    public var tcpSegments = 0
    public var tcpConnections = 0
    /// TCP connections on the s2s ports that carried no XMPP stream (listed nowhere, only counted).
    public var connectionsWithoutXMPP = 0
    public var malformedPackets = 0
    public var encryptedBytes: UInt64 = 0
    public var gapBytes: UInt64 = 0
    public var anomaliesByKind: [String: Int] = [:]
    public var suppressedViolations: [String: Int] = [:]
    /// Questions rules left open because of a bound (pending-state caps, eviction), by reason.
    public var notJudged: [String: Int] = [:]
    public var connectionsEvicted = 0
    /// Of those, closed early to stay within `--max-memory`.
    public var connectionsEvictedForMemory = 0
    public var seconds: Double = 0
    public init() {}
}

/// Everything one analysis produced: what the JSON, text and HTML reports render.
public final class AnalysisReport {
    public static let schema = "s2scope/1"
    public static let toolVersion = "0.1.0"

    public var inputs: [InputSummary] = []
    public var connections = ConnectionList()
    public var exchanges: [DialbackExchange] = []
    public var violations: [Violation] = []
    public var anomalies: [Anomaly] = []
    public var statistics = RunStatistics()
    /// TLS parameters of the connections that switched to TLS (`tls_info`).
    public var tlsInfo: [ConnectionID: TLSReportInfo] = [:]

    public init() {}

    /// Violations at or above `severity`.
    public func count(atLeast severity: Severity) -> Int { violations.filter { $0.severity >= severity }.count }

    public var xmppStreamCount: Int { connections.reduce(0) { $0 + $1.streams.count } }
}
