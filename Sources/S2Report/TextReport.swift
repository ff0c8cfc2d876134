import S2Dialback
import S2Model
import S2Rules

/// Makes wire text safe for a terminal: control characters (ESC, CR, BEL, C1 controls…) are
/// shown as `\x1b`-style escapes, so bytes from the network never drive the terminal.
public func terminalSafe(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for u in s.unicodeScalars {
        if u.value < 0x20 || u.value == 0x7f || (u.value >= 0x80 && u.value < 0xa0) || u.value == 0x2028 || u.value == 0x2029
            || (u.value >= 0x202a && u.value <= 0x202e) || (u.value >= 0x2066 && u.value <= 0x2069) {
            let hex = String(u.value, radix: 16)
            out += u.value > 0xff ? "\\u{\(hex)}" : "\\x" + (hex.count == 1 ? "0" : "") + hex
        } else {
            out.unicodeScalars.append(u)
        }
    }
    return out
}

/// The human report: summary, dialback exchanges, violations with evidence, anomalies.
public struct TextReport {
    public var color: Bool
    public var verbose: Bool

    public init(color: Bool, verbose: Bool = false) {
        self.color = color
        self.verbose = verbose
    }

    func paint(_ s: String, _ code: String) -> String { color ? "\u{1b}[\(code)m\(s)\u{1b}[0m" : s }

    private func severityLabel(_ s: Severity) -> String {
        let name = s.name.uppercased()
        switch s {
        case .critical: return paint(name, "1;31")
        case .high: return paint(name, "31")
        case .medium: return paint(name, "33")
        case .low: return paint(name, "36")
        case .info: return paint(name, "2")
        }
    }

    /// One line for a live violation.
    public func line(for v: Violation) -> String {
        "\(v.frame.time.rfc3339) \(severityLabel(v.severity)) \(v.rule) \(v.connection) \(v.direction.reportName) (\(v.actor.rawValue)) frame \(v.frame.number): \(terminalSafe(v.message)) | \(terminalSafe(v.evidence))\n"
    }

    /// One line for a completed dialback exchange.
    public func line(for x: DialbackExchange) -> String {
        "\((x.resultReplyFrame ?? x.resultFrame).time.rfc3339) dialback \(x.id) \(terminalSafe(x.originating)) → \(terminalSafe(x.receiving)) \(x.outcomeName) (verify \(x.verifyConnection.map(\.description) ?? "not seen")\(x.verifyType.map { ": \($0)" } ?? ""))\n"
    }

    /// One line for an anomaly.
    public func line(for a: Anomaly) -> String {
        "\((a.frame?.time ?? a.time)?.rfc3339 ?? "-") anomaly \(a.kind.rawValue) \(a.connection?.description ?? "-"): \(terminalSafe(a.message))\n"
    }

    /// One line of TLS parameters: version, suite, SNI, ALPN, certificates, decryption.
    public func tlsLine(_ t: TLSReportInfo) -> String {
        var parts = ["tls: \(t.version ?? "version unknown")", t.cipherSuite ?? "suite unknown"]
        if let s = t.sni { parts.append("sni '\(terminalSafe(s))'") }
        if let a = t.alpn { parts.append("alpn '\(terminalSafe(a))'") }
        if t.helloRetryRequest { parts.append("HelloRetryRequest") }
        if let n = t.serverCertificates { parts.append("\(n) server certificate\(n == 1 ? "" : "s")") }
        if let n = t.clientCertificates { parts.append("\(n) client certificate\(n == 1 ? "" : "s")") }
        parts.append("records \(t.records[0])/\(t.records[1])")
        parts.append("decryption \(t.decryption): \(t.decryptedBytes) bytes decrypted, \(t.undecryptedBytes) not")
        if !t.alerts.isEmpty { parts.append("alerts: " + t.alerts.joined(separator: "; ")) }
        return parts.joined(separator: ", ")
    }

    /// One side's certificate in a few words: subject, issuer, validity period, whether it names
    /// the claimed domain, whether it was valid then.
    public func certificatePhrase(_ side: String, _ c: TLSCertificateReport?) -> String? {
        guard let c else { return nil }
        guard c.chainLength > 0 else { return "\(side) sent no certificate" }
        guard let subject = c.subject else { return "\(side) certificate not parsed" }
        var s = "\(side) '\(terminalSafe(subject))'"
        if c.selfIssued == true {
            s += " (self-issued)"
        } else if let issuer = c.issuer {
            s += " issued by '\(terminalSafe(issuer))'"
        }
        if let b = c.notBefore, let a = c.notAfter { s += " valid \(b.rfc3339.prefix(10))…\(a.rfc3339.prefix(10))" }
        if c.validAtTime == false { s += " " + paint("(outside its validity period)", "33") }
        switch c.nameMatch {
        case "matches": s += " names '\(terminalSafe(c.expectedName ?? ""))'"
        case "mismatch": s += " " + paint("does NOT name '\(terminalSafe(c.expectedName ?? ""))'", "33")
        default: break
        }
        return s
    }

    /// The compact TLS line of a connection in the normal report.
    public func tlsSummaryLine(_ t: TLSReportInfo) -> String {
        var parts = ["\(t.version ?? "TLS") \(t.cipherSuite ?? "")".trimmingSuffixSpaces]
        if let s = t.sni { parts.append("sni '\(terminalSafe(s))'") }
        let certificates = [certificatePhrase("server", t.serverCertificate), certificatePhrase("client", t.clientCertificate)].compactMap { $0 }
        if !certificates.isEmpty {
            parts += certificates
        } else if t.version == "TLS 1.3" && t.decryptedBytes == 0 {
            parts.append("certificates encrypted (TLS 1.3)")
        }
        parts.append(t.decryption)
        return parts.joined(separator: ", ")
    }

    public func render(_ r: AnalysisReport) -> String {
        var o = ""
        o += paint("S2Scope \(AnalysisReport.toolVersion)", "1") + " — XMPP server-to-server / Server Dialback analysis\n\n"
        for i in r.inputs {
            o += "input  \(terminalSafe(i.path))  \(i.format) \(i.linkType)  \(i.packets) frames  \(i.bytes) bytes"
            if i.truncated { o += paint("  TRUNCATED: \(terminalSafe(i.note ?? ""))", "33") }
            o += "\n"
        }
        let bySeverity = Severity.allCases.reversed().map { s in "\(r.violations.filter { $0.severity == s }.count) \(s.name)" }
        let outcomes = ["valid", "invalid", "error", "pending"].map { k in "\(r.exchanges.filter { $0.outcomeName == k }.count) \(k)" }
        let silent = r.statistics.connectionsWithoutXMPP > 0 ? " (\(r.statistics.connectionsWithoutXMPP) without XMPP)" : ""
        o += "\nsummary  \(r.statistics.tcpConnections) TCP connections\(silent), \(r.xmppStreamCount) XMPP streams, \(r.exchanges.count) dialback exchanges (\(outcomes.joined(separator: ", ")))\n"
        o += "         \(r.violations.count) violations (\(bySeverity.joined(separator: ", "))), \(r.anomalies.count) anomalies\n"
        if r.statistics.encryptedBytes > 0 {
            o += "         \(r.statistics.encryptedBytes) bytes were inside TLS and not checked (rules there are unknown, not passed)\n"
        }
        let decrypted = r.tlsInfo.values.reduce(UInt64(0)) { $0 + $1.decryptedBytes }
        if decrypted > 0 {
            o += "         \(decrypted) bytes decrypted with the TLS key log and analysed\n"
        }
        var sasl: [(ConnectionID, SASLNegotiation)] = []
        for c in r.connections where !c.sasl.isEmpty { sasl += c.sasl.map { (c.id, $0) } }
        if !sasl.isEmpty {
            let kinds = ["success", "failure", "aborted", "pending"].map { k in "\(sasl.filter { $0.1.outcome.rawValue == k }.count) \(k)" }
            o += "         \(sasl.count) SASL authentication\(sasl.count == 1 ? "" : "s") (\(kinds.joined(separator: ", ")))\n"
        }

        o += servers(ServerTable(r), inputs: r.inputs.count)

        if !r.exchanges.isEmpty {
            o += "\n" + paint("Dialback exchanges", "1") + "\n"
            for x in r.exchanges {
                let outcome = x.outcomeName
                let colored = outcome == "valid" ? paint(outcome, "32") : outcome == "pending" ? paint(outcome, "2") : paint(outcome, "31")
                o += "  \(x.id)  \(terminalSafe(x.originating)) → \(terminalSafe(x.receiving))  \(colored)"
                o += "  stream id '\(terminalSafe(x.streamID ?? ""))'  db:result on \(x.resultConnection) frame \(x.resultFrame.number)"
                if let v = x.verifyConnection {
                    o += ", db:verify on \(v) frame \(x.verifyFrame?.number ?? 0) → \(x.verifyType ?? "no answer")"
                } else {
                    o += ", no db:verify seen"
                }
                if let f = x.resultReplyFrame { o += ", answer frame \(f.number)" }
                o += "\n"
            }
        }

        if !sasl.isEmpty {
            o += "\n" + paint("SASL authentications", "1") + "\n"
            for (id, n) in sasl {
                let outcome = n.outcome.rawValue
                let colored = outcome == "success" ? paint(outcome, "32") : outcome == "pending" ? paint(outcome, "2") : paint(outcome, "31")
                o += "  \(id)  \(terminalSafe(n.initiating ?? "?")) → \(terminalSafe(n.receiving ?? "?"))  \(terminalSafe(n.mechanism))  \(colored)"
                if let cond = n.condition { o += " <\(terminalSafe(cond))/>" }
                if let a = n.authzid { o += "  authzid '\(terminalSafe(a))'" }
                o += n.overTLS ? "  inside TLS" : "  without TLS"
                o += "  auth frame \(n.authFrame.number)"
                if let f = n.outcomeFrame { o += ", \(outcome) frame \(f.number)" }
                if let sid = n.streamIDAfter { o += ", restarted stream id '\(terminalSafe(sid))'" }
                o += "\n"
            }
        }

        if !verbose && !r.tlsInfo.isEmpty {
            o += "\n" + paint("TLS", "1") + "\n"
            for c in r.connections {
                guard let t = r.tlsInfo[c.id] else { continue }
                o += "  \(c.id)  " + tlsSummaryLine(t) + "\n"
            }
        }

        if !r.violations.isEmpty {
            // INFO and LOW findings are in the matrix; listed one by one only with --verbose.
            let listed = verbose ? r.violations : r.violations.filter { $0.severity >= .medium }
            o += "\n" + paint("Violations", "1") + (verbose ? "" : " at MEDIUM and above") + (listed.isEmpty ? ": none" : "") + "\n"
            for v in listed {
                o += "  \(severityLabel(v.severity)) \(paint(v.rule, "1"))  \(v.connection) \(v.direction.reportName) (\(v.actor.rawValue))  frame \(v.frame.number)\(r.inputs.count > 1 ? " of input \(v.frame.input)" : "")  \(v.frame.time.rfc3339)\n"
                o += "      \(terminalSafe(v.message))\n"
                o += "      " + paint(terminalSafe(v.evidence), "2") + "\n"
            }
            if listed.count < r.violations.count {
                let n = r.violations.count - listed.count
                o += "  (\(n) finding\(n == 1 ? "" : "s") at LOW and INFO not listed: see the matrix above, --verbose or --format json)\n"
            }
            if !r.statistics.suppressedViolations.isEmpty {
                let s = r.statistics.suppressedViolations.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }
                o += "  (repeats not shown: \(s.joined(separator: ", ")))\n"
            }
        }

        if !r.notJudged.isEmpty || r.statistics.midstreamConnections > 0 || r.statistics.elementsNotJudged > 0 {
            o += "\n" + paint("Not judged (the evidence was not in the capture)", "1") + "\n"
            if r.statistics.midstreamConnections > 0 {
                o += "  \(r.statistics.midstreamConnections) connection\(r.statistics.midstreamConnections == 1 ? " was" : "s were") picked up mid-stream: their headers, features and dialback came before the capture; their stanzas were checked only where nothing earlier is needed\n"
            }
            if r.statistics.elementsNotJudged > 0 {
                o += "  \(r.statistics.elementsNotJudged) element\(r.statistics.elementsNotJudged == 1 ? "" : "s") right after a pickup or a loss (possibly inside a cut element) not judged\n"
            }
            let why: [Unobserved: String] = [.midstream: "picked up mid-stream", .gap: "bytes lost", .encrypted: "inside TLS",
                                             .captureEnded: "capture ended before the reaction was due",
                                             .unwatched: "connection no longer watched (idle timeout, eviction)"]
            for reason in Unobserved.allCases {
                let records = r.notJudged.filter { $0.why == reason }
                guard !records.isEmpty else { continue }
                var byRule: [String: (count: Int, connections: Set<ConnectionID>)] = [:]
                for n in records {
                    byRule[n.rule, default: (0, [])].count += n.count
                    byRule[n.rule, default: (0, [])].connections.insert(n.connection)
                }
                let parts = byRule.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value.count) on \($0.value.connections.count) connection\($0.value.connections.count == 1 ? "" : "s")" }
                o += "  \(why[reason] ?? reason.rawValue): " + parts.joined(separator: ", ") + "\n"
            }
        }

        if !r.anomalies.isEmpty {
            o += "\n" + paint("Anomalies (capture and transport, not protocol violations)", "1") + "\n"
            let shown = verbose ? r.anomalies : Array(r.anomalies.prefix(20))
            for a in shown {
                o += "  \(a.kind.rawValue)  \(a.connection?.description ?? "-")  frame \(a.frame.map { String($0.number) } ?? "-")  \(terminalSafe(a.message))\n"
            }
            if shown.count < r.anomalies.count { o += "  … \(r.anomalies.count - shown.count) more (use --verbose or --format json)\n" }
        }

        if verbose && !r.connections.isEmpty {
            o += "\n" + paint("Connections", "1") + "\n"
            for c in r.connections {
                o += "  \(c.id)  \(c.client) → \(c.server)  frames \(c.firstFrame.number)–\((c.closeFrame ?? c.lastFrame).number)  close \(c.close ?? "open")\(c.tls ? "  TLS" : "")\n"
                if let t = r.tlsInfo[c.id] {
                    o += "      " + tlsLine(t) + "\n"
                    for (side, cert) in [("server", t.serverCertificate), ("client", t.clientCertificate)] {
                        guard let cert else { continue }
                        o += "      \(side) certificate (frame \(cert.frame.number)): " + terminalSafe(cert.summary) + "\n"
                        if !cert.dnsNames.isEmpty || !cert.srvNames.isEmpty || !cert.xmppAddrs.isEmpty {
                            let names = cert.dnsNames.map { "DNS:\($0)" } + cert.srvNames.map { "SRV:\($0)" } + cert.xmppAddrs.map { "XmppAddr:\($0)" }
                            o += "        subjectAltName " + terminalSafe(names.joined(separator: ", ")) + "\n"
                        }
                        for link in cert.chain {
                            o += "        then '" + terminalSafe(link.subject ?? "not parsed") + "' issued by '" + terminalSafe(link.issuer ?? "?") + "'\n"
                        }
                    }
                }
                for s in c.streams {
                    o += "      \(s.direction.reportName): to='\(terminalSafe(s.to ?? ""))' from='\(terminalSafe(s.from ?? ""))' id='\(terminalSafe(s.id ?? ""))' version='\(terminalSafe(s.version ?? ""))'\n"
                }
            }
        }
        return o
    }
}

extension String {
    fileprivate var trimmingSuffixSpaces: String {
        var s = self
        while s.hasSuffix(" ") { s.removeLast() }
        return s
    }
}
