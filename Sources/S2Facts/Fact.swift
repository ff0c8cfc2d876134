import S2Model

/// One line of a facts file (docs/FACTS.md): what a shard hands to the correlator, and what it
/// judged itself. One flat record; `t` says which fields a line has.
public struct Fact: Codable, Sendable {
    public static let format = "s2scope-facts/1"

    /// header, time, open, event, damaged, close, anomaly, finding, not_judged, end.
    public var t: String
    // header
    public var format: String?
    public var sensor: String?
    public var tool: String?
    public var inputs: [FactInput]?
    /// The correlator's clock (capture time, ns since the epoch) when the shard handed the fact
    /// over: replay advances to it first, so reaction timers fire where they fired in the shard.
    public var now: Int64?
    /// The connection, as the shard numbered it.
    public var c: Int?
    /// 0: initiator → acceptor, 1: acceptor → initiator.
    public var d: Int?
    // open
    public var client: String?
    public var server: String?
    public var client_address: String?
    public var server_address: String?
    public var handshake: Bool?
    /// TCP sequence number of stream offset 0 per direction (ISN + 1) where the SYN was seen.
    public var seq: [UInt32?]?
    public var frame: FactFrame?
    // event
    public var kind: String?
    public var xml: String?
    public var ns: [FactNamespace]?
    public var truncated: [[Int]]?
    public var xml_declaration: Bool?
    public var encoding: String?
    public var start: UInt64?
    public var end_offset: UInt64?
    public var first: FactFrame?
    public var last: FactFrame?
    public var tentative: Bool?
    public var code: Int?
    public var reason: String?
    public var offset: UInt64?
    public var looks_like_tls: Bool?
    public var length: UInt64?
    public var restricted: String?
    public var name: String?
    // close
    public var end: String?
    public var fin: [Bool]?
    public var at: Int64?
    public var shard_findings: Bool?
    /// The connection's TLS parameters, when it switched to TLS.
    public var tls: FactTLS?
    // finding, anomaly, not_judged
    public var rule: String?
    public var severity: String?
    public var actor: String?
    public var message: String?
    public var evidence: String?
    public var anomaly: String?
    public var bytes: UInt64?
    public var time: Int64?
    public var why: String?
    public var count: Int?
    // end
    public var stats: FactStatistics?

    public init(t: String) { self.t = t }
}

/// A frame: input (index into the header's `inputs`), number (1-based, per file), time (ns).
public struct FactFrame: Codable, Sendable, Hashable {
    public var i: Int
    public var n: Int
    public var t: Int64
    public init(_ f: FrameRef) {
        i = f.input
        n = f.number
        t = f.time.totalNanoseconds
    }
    public var frameRef: FrameRef { FrameRef(input: i, number: n, time: Timestamp(totalNanoseconds: t)) }
}

public struct FactNamespace: Codable, Sendable, Hashable {
    /// nil: the default namespace.
    public var prefix: String?
    public var uri: String
}

public struct FactInput: Codable, Sendable {
    public var path: String
    public var format: String
    public var link_type: String
    public var packets: Int?
    public var bytes: Int64?
    public var truncated: Bool?
    public var note: String?

    public init(path: String, format: String, link_type: String, packets: Int? = nil, bytes: Int64? = nil,
                truncated: Bool? = nil, note: String? = nil) {
        self.path = path
        self.format = format
        self.link_type = link_type
        self.packets = packets
        self.bytes = bytes
        self.truncated = truncated
        self.note = note
    }
}

/// The shard's own counters (summed over sensors by `correlate`).
public struct FactStatistics: Codable, Sendable {
    public var packets = 0
    public var bytes: Int64 = 0
    public var tcp_segments = 0
    public var tcp_connections = 0
    public var connections_without_stream = 0
    public var malformed_packets = 0
    public var encrypted_bytes: UInt64 = 0
    public var gap_bytes: UInt64 = 0
    public var connections_evicted = 0
    public var connections_evicted_for_memory = 0
    public var midstream_connections = 0
    public var elements_not_judged = 0
    public var untracked_requests = 0
    public var suppressed: [String: Int] = [:]
    public var not_judged: [String: Int] = [:]
    public init() {}
}

/// TLS parameters of a connection (the report's `tls_info`).
public struct FactTLS: Codable, Sendable {
    public var version: String?
    public var client_versions: [String]
    public var cipher_suite: String?
    public var sni: String?
    public var alpn: String?
    public var alpn_offered: [String]
    public var hello_retry_request: Bool
    public var client_certificates: Int?
    public var server_certificates: Int?
    public var alerts: [String]
    public var records: [Int]
    public var decryption: String
    public var decryption_note: String?
    public var decrypted_bytes: UInt64
    public var undecrypted_bytes: UInt64
    public var client_certificate: FactCertificate?
    public var server_certificate: FactCertificate?
}

/// A TLS certificate as the report gives it (`tls_info.*_certificate`).
public struct FactCertificate: Codable, Sendable {
    public var frame: FactFrame
    public var chain_length: Int
    public var subject: String?
    public var common_name: String?
    public var issuer: String?
    public var dns_names: [String]
    public var srv_names: [String]
    public var xmpp_addrs: [String]
    public var not_before: Int64?
    public var not_after: Int64?
    public var valid_at_time: Bool?
    public var self_issued: Bool?
    public var expected_name: String?
    public var name_match: String
    public var matched_by: String?
    public var chain: [FactChainEntry]
    public var problems: [String]
}

public struct FactChainEntry: Codable, Sendable {
    public var subject: String?
    public var issuer: String?
}
