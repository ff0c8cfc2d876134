import FoundationEssentials
import S2Dialback
import S2Model
import S2Report
import S2Rules
import S2XMPP

/// Writes a shard's facts, one JSON line each, in the order the correlator was fed.
public final class FactWriter {
    private let sink: (String) -> Void
    private let encoder: JSONEncoder
    public private(set) var lines = 0

    public init(sink: @escaping (String) -> Void) {
        self.sink = sink
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    }

    private func emit(_ f: Fact) {
        // Encoding a struct of strings and numbers does not fail.
        guard let data = try? encoder.encode(f) else { return }
        sink(String(decoding: data, as: UTF8.self) + "\n")
        lines += 1
    }

    public func header(sensor: String, inputs: [FactInput]) {
        var f = Fact(t: "header")
        f.format = Fact.format
        f.sensor = sensor
        f.tool = AnalysisReport.toolVersion
        f.inputs = inputs
        emit(f)
    }

    /// Capture time reached `now` before anything was handed over (the capture's first packet).
    public func time(_ now: Timestamp) {
        var f = Fact(t: "time")
        f.now = now.totalNanoseconds
        emit(f)
    }

    public func open(_ id: ConnectionID, client: String, server: String, clientAddress: String, serverAddress: String,
                     frame: FrameRef, handshake: Bool, firstSequence: PerDirection<UInt32?>, now: Timestamp) {
        var f = Fact(t: "open")
        f.c = id.value
        f.client = client
        f.server = server
        f.client_address = clientAddress
        f.server_address = serverAddress
        f.frame = FactFrame(frame)
        f.handshake = handshake
        f.seq = [firstSequence.clientToServer, firstSequence.serverToClient]
        f.now = now.totalNanoseconds
        emit(f)
    }

    /// Event lines are most of a facts file: written by hand (keys in the sorted order the
    /// encoder uses), about five times faster than the encoder.
    public func event(_ e: XMPPEvent, on id: ConnectionID, now: Timestamp) {
        guard case .element(let el) = e.kind else { return eventEncoded(e, on: id, now: now) }
        let s = FactXML.serialize(el)
        var o = "{\"c\":\(id.value),\"d\":\(e.direction.rawValue),\"end_offset\":\(e.endOffset),\"first\":"
        frame(e.firstFrame, into: &o)
        o += ",\"kind\":\"element\",\"last\":"
        frame(e.lastFrame, into: &o)
        o += ",\"now\":\(now.totalNanoseconds)"
        if !s.context.isEmpty {
            o += ",\"ns\":["
            for (i, d) in s.context.enumerated() {
                if i > 0 { o += "," }
                o += "{\"prefix\":"
                if let p = d.prefix { JSONWriter.appendString(p, to: &o) } else { o += "null" }
                o += ",\"uri\":"
                JSONWriter.appendString(d.uri, to: &o)
                o += "}"
            }
            o += "]"
        }
        o += ",\"start\":\(e.startOffset),\"t\":\"event\""
        if e.tentative { o += ",\"tentative\":true" }
        if !s.truncated.isEmpty {
            o += ",\"truncated\":[" + s.truncated.map { "[" + $0.map(String.init).joined(separator: ",") + "]" }.joined(separator: ",") + "]"
        }
        o += ",\"xml\":"
        JSONWriter.appendString(s.xml, to: &o)
        o += "}\n"
        sink(o)
        lines += 1
    }

    private func frame(_ f: FrameRef, into o: inout String) {
        o += "{\"i\":\(f.input),\"n\":\(f.number),\"t\":\(f.time.totalNanoseconds)}"
    }

    private func eventEncoded(_ e: XMPPEvent, on id: ConnectionID, now: Timestamp) {
        var f = Fact(t: "event")
        f.c = id.value
        f.d = e.direction.rawValue
        f.now = now.totalNanoseconds
        f.start = e.startOffset
        f.end_offset = e.endOffset
        f.first = FactFrame(e.firstFrame)
        f.last = FactFrame(e.lastFrame)
        if e.tentative { f.tentative = true }
        switch e.kind {
        case .streamOpened(let h):
            f.kind = "header"
            f.xml = FactXML.serialize(h)
            if h.hadXMLDeclaration { f.xml_declaration = true }
            f.encoding = h.declaredEncoding
        case .element(let el):
            f.kind = "element"
            let s = FactXML.serialize(el)
            f.xml = s.xml
            if !s.context.isEmpty { f.ns = s.context.map { FactNamespace(prefix: $0.prefix, uri: $0.uri) } }
            if !s.truncated.isEmpty { f.truncated = s.truncated }
        case .streamClosed:
            f.kind = "stream-closed"
        case .restricted(let r):
            f.kind = "restricted"
            switch r {
            case .comment: f.restricted = "comment"
            case .processingInstruction(let target): f.restricted = "pi"; f.name = target
            case .doctype(let name): f.restricted = "doctype"; f.name = name
            case .entityReference(let name): f.restricted = "entity"; f.name = name
            case .nonUTF8Encoding(let declared): f.restricted = "encoding"; f.name = declared
            case .invalidUTF8: f.restricted = "invalid-utf8"
            }
        case .notWellFormed(let code, let reason, let offset):
            f.kind = "not-well-formed"
            f.code = code
            f.reason = reason
            f.offset = offset
        case .dataAfterClose:
            f.kind = "data-after-close"
        case .tlsStarted(let looksLikeTLS):
            f.kind = "tls-started"
            f.looks_like_tls = looksLikeTLS
        case .pickedUp:
            f.kind = "picked-up"
        case .bytesLost(let length):
            f.kind = "bytes-lost"
            f.length = length
        }
        emit(f)
    }

    public func damaged(_ id: ConnectionID, _ d: Direction, now: Timestamp) {
        var f = Fact(t: "damaged")
        f.c = id.value
        f.d = d.rawValue
        f.now = now.totalNanoseconds
        emit(f)
    }

    public func close(_ id: ConnectionID, end: ConnectionEnd, lastFrame: FrameRef, shardFindings: Bool, tls: TLSReportInfo?, now: Timestamp) {
        var f = Fact(t: "close")
        f.c = id.value
        switch end {
        case .fin: f.end = "fin"
        case .rst: f.end = "rst"
        case .captureEnded(let fin): f.end = "capture-ended"; f.fin = [fin.clientToServer, fin.serverToClient]
        case .unwatched(let at): f.end = "unwatched"; f.at = at.totalNanoseconds
        }
        f.last = FactFrame(lastFrame)
        if shardFindings { f.shard_findings = true }
        if let t = tls {
            f.tls = FactTLS(version: t.version, client_versions: t.clientVersions, cipher_suite: t.cipherSuite, sni: t.sni, alpn: t.alpn,
                            alpn_offered: t.alpnOffered, hello_retry_request: t.helloRetryRequest, client_certificates: t.clientCertificates,
                            server_certificates: t.serverCertificates, alerts: t.alerts, records: t.records, decryption: t.decryption,
                            decryption_note: t.decryptionNote, decrypted_bytes: t.decryptedBytes, undecrypted_bytes: t.undecryptedBytes,
                            client_certificate: t.clientCertificate.map(FactCertificate.init), server_certificate: t.serverCertificate.map(FactCertificate.init))
        }
        f.now = now.totalNanoseconds
        emit(f)
    }

    /// An anomaly of the shard (capture, reassembly, XML layer, connection rules), where it was
    /// recorded in the run.
    public func anomaly(_ a: Anomaly) {
        var f = Fact(t: "anomaly")
        f.anomaly = a.kind.rawValue
        f.c = a.connection?.value
        f.d = a.direction?.rawValue
        f.frame = a.frame.map(FactFrame.init)
        f.bytes = a.bytes
        f.time = a.time?.totalNanoseconds
        f.message = a.message
        emit(f)
    }

    public func finding(_ v: Violation) {
        var f = Fact(t: "finding")
        f.rule = v.rule
        f.severity = v.severity.name
        f.c = v.connection.value
        f.d = v.direction.rawValue
        f.actor = v.actor.rawValue
        f.frame = FactFrame(v.frame)
        f.message = v.message
        f.evidence = v.evidence
        emit(f)
    }

    public func notJudged(_ n: NotJudged) {
        var f = Fact(t: "not_judged")
        f.rule = n.rule
        f.c = n.connection.value
        f.frame = FactFrame(n.frame)
        f.why = n.why.rawValue
        f.count = n.count
        emit(f)
    }

    public func end(inputs: [FactInput], statistics: FactStatistics, now: Timestamp) {
        var f = Fact(t: "end")
        f.inputs = inputs
        f.stats = statistics
        f.now = now.totalNanoseconds
        emit(f)
    }
}

extension FactInput {
    public init(_ i: InputSummary) {
        self.init(path: i.path, format: i.format, link_type: i.linkType, packets: i.packets, bytes: i.bytes,
                  truncated: i.truncated, note: i.note)
    }
}

extension FactCertificate {
    init(_ c: TLSCertificateReport) {
        self.init(frame: FactFrame(c.frame), chain_length: c.chainLength, subject: c.subject, common_name: c.commonName, issuer: c.issuer,
                  dns_names: c.dnsNames, srv_names: c.srvNames, xmpp_addrs: c.xmppAddrs, not_before: c.notBefore?.totalNanoseconds,
                  not_after: c.notAfter?.totalNanoseconds, valid_at_time: c.validAtTime, self_issued: c.selfIssued, expected_name: c.expectedName,
                  name_match: c.nameMatch, matched_by: c.matchedBy, chain: c.chain.map { FactChainEntry(subject: $0.subject, issuer: $0.issuer) },
                  problems: c.problems)
    }

    /// The report's certificate, its frame moved by `frame` onto the report's inputs and clock.
    func report(frame: (FactFrame) throws -> FrameRef) rethrows -> TLSCertificateReport {
        var c = TLSCertificateReport(frame: try frame(self.frame), chainLength: chain_length)
        c.subject = subject
        c.commonName = common_name
        c.issuer = issuer
        c.dnsNames = dns_names
        c.srvNames = srv_names
        c.xmppAddrs = xmpp_addrs
        c.notBefore = not_before.map { Timestamp(totalNanoseconds: $0) }
        c.notAfter = not_after.map { Timestamp(totalNanoseconds: $0) }
        c.validAtTime = valid_at_time
        c.selfIssued = self_issued
        c.expectedName = expected_name
        c.nameMatch = name_match
        c.matchedBy = matched_by
        c.chain = chain.map { (subject: $0.subject, issuer: $0.issuer) }
        c.problems = problems
        return c
    }
}
