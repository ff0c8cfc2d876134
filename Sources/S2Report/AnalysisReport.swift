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
    public var connectionsEvicted = 0
    /// TCP connections the capture picked up after they began (no SYN seen).
    public var midstreamConnections = 0
    /// Occasions where a rule lacked its evidence, by reason (see `AnalysisReport.notJudged`).
    public var notJudgedByReason: [String: Int] = [:]
    /// Top-level elements no rule judged: the first element after parsing resumed without context.
    public var elementsNotJudged = 0
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
    public var exchanges = ExchangeList()
    public var violations: [Violation] = []
    /// Findings past the per-connection bound of each rule: counted, not listed (the server table
    /// counts them with the listed ones).
    public var unlistedViolations: [UnlistedViolations] = []
    public var anomalies: [Anomaly] = []
    /// Rules that had occasion to judge but lacked the evidence (REPORT.md `not_judged`).
    public var notJudged: [NotJudged] = []
    public var statistics = RunStatistics()
    /// TLS parameters of the connections that switched to TLS (`tls_info`).
    public var tlsInfo: [ConnectionID: TLSReportInfo] = [:]

    public init() {}

    /// Findings at or above `severity`, listed or only counted (`unlistedViolations`).
    public func count(atLeast severity: Severity) -> Int {
        violations.filter { $0.severity >= severity }.count
            + unlistedViolations.filter { $0.severity >= severity }.reduce(0) { $0 + $1.count }
    }

    public var xmppStreamCount: Int { connections.streamCount }
}
