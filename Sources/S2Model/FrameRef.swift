/// Where a piece of evidence came from: the input file, the 1-based frame number in that
/// file (as Wireshark counts) and the frame's capture time.
public struct FrameRef: Hashable, Sendable {
    public var input: Int
    public var number: Int
    public var time: Timestamp

    public init(input: Int, number: Int, time: Timestamp) {
        self.input = input
        self.number = number
        self.time = time
    }
}

/// The two directions of a TCP connection, named after who opened it.
public enum Direction: Int, Hashable, Sendable, CaseIterable {
    /// From the initiator (the side that sent the SYN) to the acceptor.
    case clientToServer = 0
    /// From the acceptor back to the initiator.
    case serverToClient = 1

    public var reversed: Direction { self == .clientToServer ? .serverToClient : .clientToServer }

    /// The spelling used by the report contract.
    public var reportName: String { self == .clientToServer ? "client-to-server" : "server-to-client" }
}

/// A report-wide connection identifier (`C1`, `C2`, … in order of first packet).
public struct ConnectionID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Int
    public init(_ value: Int) { self.value = value }
    public var description: String { "C\(value)" }
    public static func < (a: ConnectionID, b: ConnectionID) -> Bool { a.value < b.value }
}

/// Severity levels of RULES.md, ordered from least to most severe.
public enum Severity: Int, Comparable, Sendable, CaseIterable, CustomStringConvertible {
    public var description: String { name }

    case info = 0, low, medium, high, critical

    public static func < (a: Severity, b: Severity) -> Bool { a.rawValue < b.rawValue }

    public var name: String {
        switch self {
        case .info: "info"
        case .low: "low"
        case .medium: "medium"
        case .high: "high"
        case .critical: "critical"
        }
    }

    public init?(name: String) {
        switch name.lowercased() {
        case "info": self = .info
        case "low": self = .low
        case "medium", "med": self = .medium
        case "high": self = .high
        case "critical", "crit": self = .critical
        default: return nil
        }
    }
}
