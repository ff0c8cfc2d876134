import S2Dialback
import S2Model
import S2Rules
import S2XMPP

/// TLS parameters of one connection as the reports show them (filled by the engine from S2TLS).
public struct TLSReportInfo: Sendable {
    public var version: String?
    public var clientVersions: [String] = []
    public var cipherSuite: String?
    public var sni: String?
    public var alpn: String?
    public var alpnOffered: [String] = []
    public var helloRetryRequest = false
    public var clientCertificates: Int?
    public var serverCertificates: Int?
    /// The initiator's (TLS client's) and the acceptor's (TLS server's) certificate, when seen.
    public var clientCertificate: TLSCertificateReport?
    public var serverCertificate: TLSCertificateReport?
    /// "client-to-server fatal handshake_failure (frame 12)"…
    public var alerts: [String] = []
    public var records = [0, 0]
    /// no-keylog | no-secrets | decrypted | failed | unsupported-suite | incomplete
    public var decryption: String = "no-keylog"
    public var decryptionNote: String?
    public var decryptedBytes: UInt64 = 0
    public var undecryptedBytes: UInt64 = 0
    public init() {}
}

/// One side's certificate as the reports show it: the leaf's names and validity, whether it names
/// the domain the stream claims, and the rest of the chain. All text is wire text.
public struct TLSCertificateReport: Sendable {
    /// The frame that completed the Certificate message.
    public var frame: FrameRef
    /// Certificates in the message.
    public var chainLength: Int
    /// Nil when the leaf could not be parsed (see `problems`).
    public var subject: String?
    public var commonName: String?
    public var issuer: String?
    public var dnsNames: [String] = []
    public var srvNames: [String] = []
    public var xmppAddrs: [String] = []
    public var notBefore: Timestamp?
    public var notAfter: Timestamp?
    /// Within its validity period at the frame's time.
    public var validAtTime: Bool?
    public var selfIssued: Bool?
    /// The domain the certificate should name: the initial stream header's `to` (server
    /// certificate) or `from` (client certificate); nil when the stream did not say.
    public var expectedName: String?
    /// matches | mismatch | unknown (leaf not parsed) | no-certificate (an empty Certificate
    /// message) | no-name (no domain to compare with)
    public var nameMatch: String = "no-name"
    /// The identifier that matched ("DNS-ID *.a.example", "CN-ID a.example", "SRV-ID …", "XmppAddr …").
    public var matchedBy: String?
    /// The certificates after the leaf: subject and issuer (nil where not parsed).
    public var chain: [(subject: String?, issuer: String?)] = []
    public var problems: [String] = []

    public init(frame: FrameRef, chainLength: Int) {
        self.frame = frame
        self.chainLength = chainLength
    }

    /// "CN=a.lab issued by CN=a.lab, valid 2026-11-25…2036-11-22 (at the connection's time), names a.lab: matches (DNS-ID a.lab)".
    public var summary: String {
        guard chainLength > 0 else { return "no certificate (an empty Certificate message)" }
        guard let subject else { return "\(chainLength) certificate\(chainLength == 1 ? "" : "s"), not parsed: \(problems.first ?? "?")" }
        var s = "'\(subject)' issued by '\(issuer ?? "?")'"
        if selfIssued == true { s += " (self-issued)" }
        if let b = notBefore, let a = notAfter {
            s += ", valid \(b.rfc3339.prefix(10))…\(a.rfc3339.prefix(10))"
            s += validAtTime == true ? "" : " (NOT at the connection's time)"
        }
        switch nameMatch {
        case "matches": s += ", names '\(expectedName ?? "")': yes (\(matchedBy ?? "?"))"
        case "mismatch": s += ", names '\(expectedName ?? "")': NO"
        default: break
        }
        if chainLength > 1 { s += ", chain of \(chainLength)" }
        return s
    }
}

/// Renders the report contract `s2scope/1` (../shared/spec/REPORT.md): one JSON document, or
/// JSON Lines events.
public enum JSONReport {
    public static func document(_ r: AnalysisReport, pretty: Bool = true) -> String {
        var out = ""
        write(r, pretty: pretty) { out += $0 }
        return out
    }

    /// The report as one JSON document, handed to `sink` in chunks.
    public static func write(_ r: AnalysisReport, pretty: Bool = true, to sink: @escaping (String) -> Void) {
        var w = JSONWriter(pretty: pretty, streamingTo: sink)
        w.beginObject()
        w.field("schema", AnalysisReport.schema)
        w.beginObject("tool")
        w.field("name", "s2scope")
        w.field("version", AnalysisReport.toolVersion)
        w.endObject()
        w.beginArray("inputs")
        for i in r.inputs { input(&w, i) }
        w.endArray()
        w.beginObject("summary")
        w.field("packets", r.statistics.packets)
        w.field("tcp_connections", r.statistics.tcpConnections)
        w.field("xmpp_streams", r.xmppStreamCount)
        w.field("dialbacks", r.exchanges.count)
        w.field("violations", r.violations.count)
        w.field("anomalies", r.anomalies.count)
        w.beginObject("violations_by_severity")
        for s in Severity.allCases.reversed() { w.field(s.name, r.violations.filter { $0.severity == s }.count) }
        w.endObject()
        w.beginObject("anomalies_by_kind")
        for (k, v) in r.statistics.anomaliesByKind.sorted(by: { $0.key < $1.key }) { w.field(k, v) }
        w.endObject()
        w.beginObject("suppressed_violations")
        for (k, v) in r.statistics.suppressedViolations.sorted(by: { $0.key < $1.key }) { w.field(k, v) }
        w.endObject()
        if r.statistics.connectionsEvicted > 0 {
            // Closed early by --max-connections or --max-memory (docs/LIMITS.md).
            w.field("connections_evicted", r.statistics.connectionsEvicted)
            w.field("connections_evicted_for_memory", r.statistics.connectionsEvictedForMemory)
        }
        w.field("tcp_connections_without_xmpp", r.statistics.connectionsWithoutXMPP)
        w.field("encrypted_bytes", r.statistics.encryptedBytes)
        w.field("gap_bytes", r.statistics.gapBytes)
        w.field("midstream_connections", r.statistics.midstreamConnections)
        w.field("elements_not_judged", r.statistics.elementsNotJudged)
        w.beginObject("not_judged")
        for (k, v) in r.statistics.notJudgedByReason.sorted(by: { $0.key < $1.key }) { w.field(k, v) }
        w.endObject()
        w.endObject()
        w.beginArray("connections")
        for c in r.connections { connection(&w, c, tls: r.tlsInfo[c.id]) }
        w.endArray()
        w.beginArray("dialbacks")
        for x in r.exchanges { dialback(&w, x) }
        w.endArray()
        w.beginArray("violations")
        for v in r.violations { violation(&w, v) }
        w.endArray()
        w.beginArray("anomalies")
        for a in r.anomalies { anomaly(&w, a) }
        w.endArray()
        w.beginArray("not_judged")
        for n in r.notJudged { notJudged(&w, n) }
        w.endArray()
        let table = ServerTable(r)
        w.beginArray("servers")
        for s in table.rows { server(&w, s) }
        w.endArray()
        if table.rowsNotListed > 0 {
            w.beginObject("servers_not_listed")
            w.field("servers", table.rowsNotListed)
            w.field("findings", table.findingsNotListed)
            w.endObject()
        }
        w.endObject()
        w.finish()
        sink("\n")
    }

    static func tlsInfo(_ w: inout JSONWriter, _ t: TLSReportInfo) {
        w.beginObject("tls_info")
        w.field("version", t.version)
        w.beginArray("client_versions")
        for v in t.clientVersions { w.value(v) }
        w.endArray()
        w.field("cipher_suite", t.cipherSuite)
        w.field("sni", t.sni)
        w.field("alpn", t.alpn)
        w.beginArray("alpn_offered")
        for v in t.alpnOffered { w.value(v) }
        w.endArray()
        w.field("hello_retry_request", t.helloRetryRequest)
        if let n = t.clientCertificates { w.field("client_certificates", n) } else { w.fieldNull("client_certificates") }
        if let n = t.serverCertificates { w.field("server_certificates", n) } else { w.fieldNull("server_certificates") }
        certificate(&w, "client_certificate", t.clientCertificate)
        certificate(&w, "server_certificate", t.serverCertificate)
        w.beginArray("alerts")
        for a in t.alerts { w.value(a) }
        w.endArray()
        w.beginObject("records")
        w.field("client-to-server", t.records[0])
        w.field("server-to-client", t.records[1])
        w.endObject()
        w.field("decryption", t.decryption)
        if let n = t.decryptionNote { w.field("decryption_note", n) }
        w.field("decrypted_bytes", t.decryptedBytes)
        w.field("undecrypted_bytes", t.undecryptedBytes)
        w.endObject()
    }

    static func certificate(_ w: inout JSONWriter, _ name: String, _ c: TLSCertificateReport?) {
        guard let c else {
            w.fieldNull(name)
            return
        }
        w.beginObject(name)
        w.field("input", c.frame.input)
        w.field("packet", c.frame.number)
        w.field("chain_length", c.chainLength)
        w.field("subject", c.subject)
        w.field("common_name", c.commonName)
        w.field("issuer", c.issuer)
        for (key, names) in [("dns_names", c.dnsNames), ("srv_names", c.srvNames), ("xmpp_addrs", c.xmppAddrs)] {
            w.beginArray(key)
            for n in names { w.value(n) }
            w.endArray()
        }
        w.field("not_before", c.notBefore?.rfc3339)
        w.field("not_after", c.notAfter?.rfc3339)
        if let v = c.validAtTime { w.field("valid_at_time", v) } else { w.fieldNull("valid_at_time") }
        if let v = c.selfIssued { w.field("self_issued", v) } else { w.fieldNull("self_issued") }
        w.field("expected_name", c.expectedName)
        w.field("name_match", c.nameMatch)
        w.field("matched_by", c.matchedBy)
        w.beginArray("chain")
        for link in c.chain {
            w.beginObject()
            w.field("subject", link.subject)
            w.field("issuer", link.issuer)
            w.endObject()
        }
        w.endArray()
        w.beginArray("problems")
        for p in c.problems { w.value(p) }
        w.endArray()
        w.endObject()
    }

    static func input(_ w: inout JSONWriter, _ i: InputSummary) {
        w.beginObject()
        w.field("path", i.path)
        w.field("format", i.format)
        w.field("link_type", i.linkType)
        w.field("packets", i.packets)
        w.field("bytes", i.bytes)
        w.field("truncated", i.truncated)
        if let n = i.note { w.field("note", n) }
        w.endObject()
    }

    public static func connection(_ w: inout JSONWriter, _ c: ConnectionSummary, event: Bool = false, tls: TLSReportInfo? = nil) {
        w.beginObject()
        if event { w.field("event", "connection"); w.field("time", (c.closeFrame ?? c.lastFrame).time.rfc3339) }
        w.field("id", c.id.description)
        w.field("input", c.input)
        w.field("client", c.client)
        w.field("server", c.server)
        w.field("first_packet", c.firstFrame.number)
        w.field("last_packet", (c.closeFrame ?? c.lastFrame).number)
        w.field("start", c.firstFrame.time.rfc3339)
        w.field("end", (c.closeFrame ?? c.lastFrame).time.rfc3339)
        w.field("close", c.close ?? "open")
        w.field("tls", c.tls)
        if c.pickedUp.clientToServer || c.pickedUp.serverToClient {
            w.beginArray("picked_up_midstream")
            for d in Direction.allCases where c.pickedUp[d] { w.value(d.reportName) }
            w.endArray()
        }
        w.beginArray("streams")
        for s in c.streams {
            w.beginObject()
            w.field("direction", s.direction.reportName)
            w.beginObject("header")
            w.field("to", s.to)
            w.field("from", s.from)
            w.field("id", s.id)
            w.field("version", s.version)
            w.endObject()
            w.field("closed", s.closed)
            w.endObject()
        }
        w.endArray()
        if !c.sasl.isEmpty {
            w.beginArray("sasl")
            for n in c.sasl { sasl(&w, n) }
            w.endArray()
        }
        if let tls { tlsInfo(&w, tls) }
        w.endObject()
    }

    /// One SASL negotiation of a connection (RFC 6120 §6).
    static func sasl(_ w: inout JSONWriter, _ n: SASLNegotiation) {
        w.beginObject()
        w.field("mechanism", n.mechanism)
        w.field("initiating", n.initiating)
        w.field("receiving", n.receiving)
        w.field("authzid", n.authzid)
        w.field("outcome", n.outcome.rawValue)
        w.field("condition", n.condition)
        w.field("domain", n.domain)
        w.field("inside_tls", n.overTLS)
        w.beginArray("offered")
        for m in n.offered { w.value(m) }
        w.endArray()
        w.field("packet", n.authFrame.number)
        if let f = n.outcomeFrame { w.field("outcome_packet", f.number) } else { w.fieldNull("outcome_packet") }
        w.field("stream_id_before", n.streamIDBefore)
        w.field("stream_id_after", n.streamIDAfter)
        w.endObject()
    }

    public static func dialback(_ w: inout JSONWriter, _ x: DialbackExchange, event: Bool = false) {
        w.beginObject()
        if event { w.field("event", "dialback"); w.field("time", (x.resultReplyFrame ?? x.resultFrame).time.rfc3339) }
        w.field("id", x.id)
        w.field("originating", x.originating)
        w.field("receiving", x.receiving)
        w.field("stream_id", x.streamID)
        w.field("result_connection", x.resultConnection.description)
        w.field("verify_connection", x.verifyConnection?.description)
        // The contract's values only (valid|invalid|error); an answer with any other type (DB-SYN-1)
        // counts as error, its type kept beside in *_raw.
        let known: Set<String> = ["valid", "invalid", "error"]
        w.field("verify_type", x.verifyType.map { known.contains($0) ? $0 : "error" })
        w.field("outcome", x.outcome.map { known.contains($0) ? $0 : "error" } ?? "pending")
        if let t = x.verifyType, !known.contains(t) { w.field("verify_type_raw", t) }
        if let t = x.outcome, !known.contains(t) { w.field("outcome_raw", t) }
        w.field("result_packet", x.resultFrame.number)
        if let f = x.verifyFrame { w.field("verify_packet", f.number) }
        if let f = x.verifyReplyFrame { w.field("verify_reply_packet", f.number) }
        if let f = x.resultReplyFrame {
            w.field("result_reply_packet", f.number)
            w.field("seconds_to_outcome", f.time.secondsSince(x.resultFrame.time))
        }
        w.endObject()
    }

    public static func violation(_ w: inout JSONWriter, _ v: Violation, event: Bool = false) {
        w.beginObject()
        if event { w.field("event", "violation") }
        w.field("rule", v.rule)
        w.field("severity", v.severity.name)
        w.field("connection", v.connection.description)
        w.field("direction", v.direction.reportName)
        w.field("actor", v.actor.rawValue)
        w.field("input", v.frame.input)
        w.field("packet", v.frame.number)
        w.field("time", v.frame.time.rfc3339)
        w.field("message", v.message)
        w.field("evidence", v.evidence)
        w.endObject()
    }

    public static func anomaly(_ w: inout JSONWriter, _ a: Anomaly, event: Bool = false) {
        w.beginObject()
        if event { w.field("event", "anomaly") }
        w.field("kind", a.kind.rawValue)
        w.field("connection", a.connection?.description)
        if let d = a.direction { w.field("direction", d.reportName) }
        if let f = a.frame {
            w.field("input", f.input)
            w.field("packet", f.number)
            w.field("time", f.time.rfc3339)
        } else {
            w.fieldNull("packet")
            if let t = a.time { w.field("time", t.rfc3339) }
        }
        if let b = a.bytes { w.field("bytes", b) }
        w.field("message", a.message)
        w.endObject()
    }

    /// One rule that lacked its evidence on a connection: the first occasion and how many.
    public static func notJudged(_ w: inout JSONWriter, _ n: NotJudged, event: Bool = false) {
        w.beginObject()
        if event { w.field("event", "not_judged"); w.field("time", n.frame.time.rfc3339) }
        w.field("rule", n.rule)
        w.field("connection", n.connection.description)
        w.field("input", n.frame.input)
        w.field("packet", n.frame.number)
        w.field("why", n.why.rawValue)
        w.field("count", n.count)
        w.endObject()
    }

    static func outcomes(_ w: inout JSONWriter, _ key: String, _ o: OutcomeCounts) {
        w.beginObject(key)
        w.field("valid", o.valid)
        w.field("invalid", o.invalid)
        w.field("error", o.error)
        w.field("pending", o.pending)
        w.endObject()
    }

    static func field(_ w: inout JSONWriter, _ key: String, _ v: Bool?) {
        if let v { w.field(key, v) } else { w.fieldNull(key) }
    }

    /// One row of the per-server table (REPORT.md `servers`).
    public static func server(_ w: inout JSONWriter, _ s: ServerRow, event: Bool = false) {
        w.beginObject()
        if event { w.field("event", "server"); w.field("time", s.lastSeen.time.rfc3339) }
        w.field("id", s.id)
        w.beginArray("domains")
        for d in s.domains { w.value(d) }
        w.endArray()
        if s.domainsNotListed > 0 { w.field("domains_not_listed", s.domainsNotListed) }
        w.beginArray("authenticated_domains")
        for d in s.authenticatedDomains { w.value(d) }
        w.endArray()
        w.beginArray("stanza_domains")
        for d in s.stanzaDomains { w.value(d) }
        w.endArray()
        w.beginArray("addresses")
        for a in s.addresses { w.value(a) }
        w.endArray()
        w.field("grouping", s.grouping)
        w.beginArray("roles")
        for role in s.roles { w.value(role) }
        w.endArray()
        outcomes(&w, "dialbacks", s.dialbacks)
        w.beginObject("dialbacks_by_role")
        for (role, o) in s.dialbacksByRole { outcomes(&w, role, o) }
        w.endObject()
        w.beginObject("connections")
        w.field("initiated", s.connectionsInitiated)
        w.field("accepted", s.connectionsAccepted)
        w.endObject()
        w.field("stanzas_sent", s.stanzasSent)
        w.field("first_seen", s.firstSeen.time.rfc3339)
        w.field("last_seen", s.lastSeen.time.rfc3339)
        let p = s.profile
        w.beginObject("profile")
        w.field("verify_connection", p.verifyConnection)
        w.beginObject("verify_connections")
        w.field("separate", p.verifyConnections.separate)
        w.field("reverse", p.verifyConnections.reverse)
        w.endObject()
        field(&w, "dialback_errors", p.dialbackErrors)
        field(&w, "dialback_errors_advertised", p.dialbackErrorsAdvertised)
        w.field("dialback_errors_sent", p.dialbackErrorsSent)
        w.field("starttls", p.startTLS)
        field(&w, "bidi", p.bidi)
        field(&w, "sasl_external", p.saslExternal)
        field(&w, "initial_header_empty_id", p.initialHeaderEmptyID)
        field(&w, "typed_result_id", p.typedResultID)
        field(&w, "typed_result_key", p.typedResultKey)
        w.beginArray("stream_versions")
        for v in p.streamVersions { w.value(v) }
        w.endArray()
        w.endObject()
        w.beginArray("findings")
        for f in s.findings {
            w.beginObject()
            w.field("rule", f.rule)
            w.field("severity", f.severity.name)
            w.field("count", f.count)
            w.field("first", f.first.time.rfc3339)
            w.field("last", f.last.time.rfc3339)
            w.beginObject("example")
            w.field("connection", f.exampleConnection.description)
            w.field("input", f.exampleFrame.input)
            w.field("packet", f.exampleFrame.number)
            w.endObject()
            w.endObject()
        }
        w.endArray()
        w.endObject()
    }

    /// One JSON Lines event.
    public static func line(_ body: (inout JSONWriter) -> Void) -> String {
        var w = JSONWriter(pretty: false)
        body(&w)
        return w.output + "\n"
    }

    /// The whole report as JSON Lines (connections, dialbacks, violations, anomalies, what was not
    /// judged, the per-server table and the servers past its row bound, then stats).
    public static func lines(_ r: AnalysisReport) -> String {
        var out = ""
        writeLines(r) { out += $0 }
        return out
    }

    /// The report as JSON Lines, one line at a time to `sink`.
    public static func writeLines(_ r: AnalysisReport, to sink: (String) -> Void) {
        for c in r.connections { sink(line { connection(&$0, c, event: true, tls: r.tlsInfo[c.id]) }) }
        for x in r.exchanges { sink(line { dialback(&$0, x, event: true) }) }
        for v in r.violations { sink(line { violation(&$0, v, event: true) }) }
        for a in r.anomalies { sink(line { anomaly(&$0, a, event: true) }) }
        for n in r.notJudged { sink(line { notJudged(&$0, n, event: true) }) }
        let table = ServerTable(r)
        for s in table.rows { sink(line { server(&$0, s, event: true) }) }
        if table.rowsNotListed > 0 {
            // As the JSON report's `servers_not_listed`: the servers past the row bound, counted.
            sink(line { w in
                w.beginObject()
                w.field("event", "servers_not_listed")
                w.field("time", r.connections.last.map { ($0.closeFrame ?? $0.lastFrame).time.rfc3339 })
                w.field("servers", table.rowsNotListed)
                w.field("findings", table.findingsNotListed)
                w.endObject()
            })
        }
        sink(line { stats(&$0, r) })
    }

    public static func stats(_ w: inout JSONWriter, _ r: AnalysisReport) {
        w.beginObject()
        w.field("event", "stats")
        w.field("time", r.connections.last.map { ($0.closeFrame ?? $0.lastFrame).time.rfc3339 })
        w.field("packets", r.statistics.packets)
        w.field("bytes", r.statistics.bytes)
        w.field("tcp_connections", r.statistics.tcpConnections)
        w.field("dialbacks", r.exchanges.count)
        w.field("violations", r.violations.count)
        w.field("anomalies", r.anomalies.count)
        w.endObject()
    }
}
