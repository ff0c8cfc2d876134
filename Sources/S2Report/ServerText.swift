import S2Dialback
import S2Model
import S2Rules

/// The per-server part of the text report: one entry per server (domains, addresses, roles,
/// dialbacks, behaviour, and its findings at MEDIUM or above — all with --verbose), then the
/// conformance matrix (servers × rules, worst severity and count per cell).
extension TextReport {
    /// Short severity names for matrix cells.
    static func shortName(_ s: Severity) -> String {
        switch s {
        case .critical: "CRIT"
        case .high: "HIGH"
        case .medium: "MED"
        case .low: "LOW"
        case .info: "INFO"
        }
    }

    public func paintSeverity(_ text: String, _ s: Severity) -> String {
        switch s {
        case .critical: return paint(text, "1;31")
        case .high: return paint(text, "31")
        case .medium: return paint(text, "33")
        case .low: return paint(text, "36")
        case .info: return paint(text, "2")
        }
    }

    /// The behaviour facts of a profile in words; what the capture does not show is left out.
    public static func profileWords(_ p: ServerProfile) -> [String] {
        var out: [String] = []
        switch p.verifyConnection {
        case "reverse": out.append("db:verify on its own connection to the authoritative server")
        case "separate": out.append("db:verify on a separate connection")
        case "mixed": out.append("db:verify on its own connection \(p.verifyConnections.reverse)×, on a separate one \(p.verifyConnections.separate)×")
        default: break
        }
        if let t = p.startTLS { out.append("STARTTLS \(t)") }
        if p.dialbackErrorsAdvertised == true { out.append("dialback errors advertised") }
        else if p.dialbackErrorsAdvertised == false { out.append("dialback errors not advertised") }
        if p.dialbackErrorsSent { out.append("sent dialback errors") }
        if let b = p.bidi { out.append(b ? "bidi" : "no bidi") }
        if let x = p.saslExternal { out.append(x ? "SASL EXTERNAL" : "no SASL EXTERNAL") }
        if p.initialHeaderEmptyID == true { out.append("id='' on initial headers") }
        switch (p.typedResultID, p.typedResultKey) {
        case (true?, true?): out.append("typed db:result answers carry id and key")
        case (true?, _): out.append("typed db:result answers carry id")
        case (_, true?): out.append("typed db:result answers carry the key")
        case (false?, false?): out.append("plain typed db:result answers")
        default: break
        }
        if !p.streamVersions.isEmpty && p.streamVersions != ["1.0"] {
            out.append("stream version " + p.streamVersions.map { $0.isEmpty ? "none" : "'\($0)'" }.joined(separator: ", "))
        }
        return out
    }

    func outcomeWords(_ o: OutcomeCounts) -> String {
        let parts = [("valid", o.valid), ("invalid", o.invalid), ("error", o.error), ("pending", o.pending)]
            .filter { $0.1 > 0 }.map { "\($0.1) \($0.0)" }
        return "\(o.total) dialback\(o.total == 1 ? "" : "s")" + (parts.isEmpty ? "" : " (\(parts.joined(separator: ", ")))")
    }

    /// The servers and the conformance matrix; empty when the report has no connection.
    public func servers(_ t: ServerTable, inputs: Int) -> String {
        guard !t.rows.isEmpty else { return "" }
        var o = "\n" + paint("Servers", "1") + " (one per address, unless the capture links addresses to one server)\n"
        for s in t.rows {
            let label = terminalSafe(clip(s.domains.isEmpty && !s.stanzaDomains.isEmpty ? "(\(s.stanzaDomains.joined(separator: ", ")))" : s.domains.joined(separator: ", "), 60))
            o += "  \(paint(s.id, "1"))  \(label.isEmpty ? "(no domain)" : label)  at \(terminalSafe(s.addresses.joined(separator: ", ")))"
            if s.domainsNotListed > 0 { o += "  (+\(s.domainsNotListed) domains)" }
            o += "\n"
            var facts: [String] = []
            if !s.roles.isEmpty { facts.append(s.roles.joined(separator: ", ")) }
            if s.dialbacks.total > 0 { facts.append(outcomeWords(s.dialbacks)) }
            facts.append("\(s.connectionsInitiated) connection\(s.connectionsInitiated == 1 ? "" : "s") opened, \(s.connectionsAccepted) accepted, \(s.stanzasSent) stanza\(s.stanzasSent == 1 ? "" : "s") sent")
            o += "      " + facts.joined(separator: "; ") + "\n"
            let profile = Self.profileWords(s.profile)
            if !profile.isEmpty { o += "      " + profile.joined(separator: "; ") + "\n" }
            if s.addresses.count > 1 || s.grouping.contains(";") {
                o += "      grouping: " + terminalSafe(s.grouping) + "\n"
            }
            for f in s.findings where verbose || f.severity >= .medium {
                o += "      \(paintSeverity(f.severity.name.uppercased(), f.severity)) \(f.rule) ×\(f.count)  first \(f.first.time.rfc3339)"
                if f.count > 1 { o += ", last \(f.last.time.rfc3339)" }
                o += "  e.g. \(f.exampleConnection) frame \(f.exampleFrame.number)\(inputs > 1 ? " of input \(f.exampleFrame.input)" : "")\n"
            }
        }
        guard !t.rules.isEmpty else { return o + "\n" + paint("Conformance matrix", "1") + ": no server broke a rule.\n" }
        o += "\n" + paint("Conformance matrix", "1") + " (worst severity and count per server and rule; - none)\n"
        let labels = t.rows.map { terminalSafe(clip("\($0.id) \($0.label)", 22)) }
        let first = max(labels.map(\.count).max() ?? 0, 4) + 2
        var columns: [(rule: String, width: Int, cells: [(text: String, severity: Severity?)])] = []
        for rule in t.rules {
            let cells = t.rows.map { s -> (String, Severity?) in
                guard let w = s.worst(rule) else { return ("-", nil) }
                return ("\(Self.shortName(w.severity)) \(s.count(rule))", w.severity)
            }
            let width = max(rule.count, cells.map(\.0.count).max() ?? 1) + 2
            columns.append((rule, width, cells))
        }
        // Blocks of columns that fit 120 characters.
        var blocks: [[Int]] = [[]]
        var used = first + 2
        for (i, c) in columns.enumerated() {
            if used + c.width > 120, !blocks[blocks.count - 1].isEmpty {
                blocks.append([])
                used = first + 2
            }
            blocks[blocks.count - 1].append(i)
            used += c.width
        }
        func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(0, n - s.count)) }
        for (b, block) in blocks.enumerated() {
            if b > 0 { o += "\n" }
            o += "  " + pad("", first) + block.map { pad(columns[$0].rule, columns[$0].width) }.joined()
            while o.hasSuffix(" ") { o.removeLast() }
            o += "\n"
            for (k, label) in labels.enumerated() {
                o += "  " + pad(label, first)
                for i in block {
                    let cell = columns[i].cells[k]
                    let padded = pad(cell.text, columns[i].width)
                    o += cell.severity.map { paintSeverity(cell.text, $0) + String(padded.dropFirst(cell.text.count)) } ?? padded
                }
                while o.hasSuffix(" ") { o.removeLast() }
                o += "\n"
            }
        }
        if t.rowsNotListed > 0 {
            o += "  (\(t.rowsNotListed) more servers with \(t.findingsNotListed) findings not listed: only the \(t.rows.count) with the worst findings, then the most findings and connections, have a row)\n"
        }
        if t.unattributed > 0 { o += "  (\(t.unattributed) findings on connections the report does not list are not in the matrix)\n" }
        return o
    }
}
