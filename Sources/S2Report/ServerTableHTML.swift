import S2Dialback
import S2Model
import S2Rules

/// The HTML report's per-server part: the server table and the conformance matrix (servers ×
/// rules, worst severity and count per cell, coloured by severity). A click on a cell shows only
/// the dialback exchanges, findings and connections of that server and rule; a click on a
/// server shows those of the server; a second click, or "show all", shows everything again.
///
/// What a click selects is decided here, as tokens (`s3` for a server, `c3-5` for a cell) in
/// `data-cells` attributes of the exchanges, violation rows and connection rows: the script only
/// compares tokens it did not make from wire text. It hides with a class of its own, so it
/// composes with the filters of the page's other script.
public struct ServerTableHTML {
    public let table: ServerTable
    /// Exchange number → tokens; violation index → tokens; connection → tokens.
    private var exchangeTokens: [Int: Set<String>] = [:]
    private var violationTokens: [Int: String] = [:]
    private var connectionTokens: [ConnectionID: Set<String>] = [:]

    public init(_ r: AnalysisReport, table: ServerTable? = nil) {
        let t = table ?? ServerTable(r)
        self.table = t
        let ruleIndex = Dictionary(uniqueKeysWithValues: t.rules.enumerated().map { ($1, $0) })
        var rowOfAddress: [String: Int] = [:]
        for (k, row) in t.rows.enumerated() { for a in row.addresses { rowOfAddress[a] = k } }
        // Cells by connection (a finding names the connections it happened on).
        var cellsOn: [ConnectionID: Set<String>] = [:]
        for (k, row) in t.rows.enumerated() {
            for f in row.findings {
                guard let j = ruleIndex[f.rule] else { continue }
                for c in f.connections { cellsOn[c, default: []].insert("c\(k)-\(j)") }
            }
            for x in row.exchanges { exchangeTokens[x, default: []].insert("s\(k)") }
        }
        var ends: [ConnectionID: (client: String, server: String)] = [:]
        for c in r.connections {
            ends[c.id] = (c.clientAddress, c.serverAddress)
            var tokens = cellsOn[c.id] ?? []
            for a in [c.clientAddress, c.serverAddress] { if let k = rowOfAddress[a] { tokens.insert("s\(k)") } }
            connectionTokens[c.id] = tokens
        }
        for x in r.exchanges {
            for c in Set(x.steps.map(\.connection)) { exchangeTokens[x.number, default: []].formUnion(cellsOn[c] ?? []) }
        }
        for (i, v) in r.violations.enumerated() {
            guard let e = ends[v.connection] else { continue }
            let a = ServerTable.chargedAddress((v.actor, v.direction), client: e.client, server: e.server)
            guard let k = rowOfAddress[a], let j = ruleIndex[v.rule] else { continue }
            violationTokens[i] = "s\(k) c\(k)-\(j)"
        }
    }

    func sorted(_ s: Set<String>?) -> String { (s ?? []).sorted().joined(separator: " ") }

    /// ` data-cells="…"` for an exchange, a violation (by its index in the report) or a connection.
    public func attribute(exchange number: Int) -> String { " data-cells=\"\(sorted(exchangeTokens[number]))\"" }
    public func attribute(violation index: Int) -> String { " data-cells=\"\(violationTokens[index] ?? "")\"" }
    public func attribute(connection id: ConnectionID) -> String { " data-cells=\"\(sorted(connectionTokens[id]))\"" }

    static func shortName(_ s: Severity) -> String { TextReport.shortName(s) }

    /// The section: the matrix, then the servers.
    public func section() -> String {
        let e = htmlEscape
        var o = "<section id=\"servers\"><h2>Servers (\(table.rows.count))</h2>\n"
        if table.rows.isEmpty { return o + "<p class=\"none\">No server was seen.</p>\n</section>\n" }
        o += "<p class=\"note\">One row per address, unless the capture links addresses to one server (one dialback key space or stream-id generator). Findings are charged to the server the rule names. Click a server or a cell of the matrix to show only its exchanges, findings and connections.</p>\n"
        if table.rowsNotListed > 0 {
            o += "<p class=\"note\">\(table.rowsNotListed) more servers with \(table.findingsNotListed) findings are not listed: only the \(table.rows.count) with the worst findings, then the most findings and connections, have a row.</p>\n"
        }
        o += "<h3>Conformance matrix</h3><p class=\"note\">Worst severity and number of findings per server and rule.</p>\n"
        if table.rules.isEmpty {
            o += "<p class=\"none\">No server broke a rule.</p>\n"
        } else {
            o += "<table class=\"matrix\"><thead><tr><th>server</th>"
            for rule in table.rules { o += "<th class=\"rule\">\(e(rule))</th>" }
            o += "</tr></thead><tbody>\n"
            for (k, s) in table.rows.enumerated() {
                o += "<tr><th><button type=\"button\" class=\"pick\" data-cell=\"s\(k)\" aria-pressed=\"false\">\(e(s.id)) \(e(clip(s.label, 40)))</button></th>"
                for (j, rule) in table.rules.enumerated() {
                    guard let w = s.worst(rule) else { o += "<td class=\"cell\">–</td>"; continue }
                    let label = "\(s.id) \(s.label): \(rule), \(s.count(rule)) finding\(s.count(rule) == 1 ? "" : "s"), worst \(w.severity.name)"
                    o += "<td class=\"cell sev-\(w.severity.name)\"><button type=\"button\" class=\"pick\" data-cell=\"c\(k)-\(j)\" aria-pressed=\"false\" title=\"\(e(label))\">"
                    o += "\(Self.shortName(w.severity)) \(s.count(rule))</button></td>"
                }
                o += "</tr>\n"
            }
            o += "</tbody></table>\n"
        }
        o += "<p class=\"pickbar\"><output id=\"cell-status\" aria-live=\"polite\">Showing everything.</output> <button type=\"button\" id=\"cell-clear\" hidden>show all</button></p>\n"
        o += "<h3>Servers</h3>\n"
        o += "<table class=\"servers\"><thead><tr><th>server</th><th>domains</th><th>addresses</th><th>roles</th><th>dialbacks</th><th>behaviour</th><th>findings</th></tr></thead><tbody>\n"
        for (k, s) in table.rows.enumerated() {
            let worst = s.findings.map(\.severity).max()
            o += "<tr class=\"srow\(worst.map { " sev-\($0.name)" } ?? "")\" id=\"server-\(e(s.id))\">"
            o += "<td><button type=\"button\" class=\"pick\" data-cell=\"s\(k)\" aria-pressed=\"false\" title=\"\(e(s.grouping))\">\(e(s.id))</button></td>"
            o += "<td class=\"dom\">" + (s.domains.isEmpty ? (s.stanzaDomains.isEmpty ? "<span class=\"none\">none claimed</span>" : "<span class=\"none\">stanzas from</span> " + e(s.stanzaDomains.joined(separator: ", "))) : e(s.domains.joined(separator: ", ")))
            if s.domainsNotListed > 0 { o += " <span class=\"none\">(+\(s.domainsNotListed))</span>" }
            o += "</td><td class=\"addr\">\(e(s.addresses.joined(separator: ", ")))</td><td>\(e(s.roles.joined(separator: ", ")))</td>"
            o += "<td>" + ["valid", "invalid", "error", "pending"].compactMap { k -> String? in
                let n = k == "valid" ? s.dialbacks.valid : k == "invalid" ? s.dialbacks.invalid : k == "error" ? s.dialbacks.error : s.dialbacks.pending
                return n == 0 ? nil : "<span class=\"oc oc-\(k)\">\(n) \(k)</span>"
            }.joined(separator: " ") + "</td>"
            o += "<td class=\"msg\">\(e(TextReport.profileWords(s.profile).joined(separator: "; ")))"
            if s.addresses.count > 1 || s.grouping.contains(";") { o += "<div class=\"meta\">\(e(s.grouping))</div>" }
            o += "</td><td>"
            for f in s.findings {
                o += "<div><span class=\"sev sev-\(f.severity.name)\">\(f.severity.name)</span> <span class=\"rule\">\(e(f.rule))</span> ×\(f.count)"
                o += " <span class=\"meta\">\(e(f.first.time.rfc3339))\(f.count > 1 ? " – " + e(f.last.time.rfc3339) : ""), e.g. \(e(f.exampleConnection.description)) frame \(f.exampleFrame.number)</span></div>"
            }
            if s.findings.isEmpty { o += "<span class=\"none\">none</span>" }
            o += "</td></tr>\n"
        }
        o += "</tbody></table>\n"
        o += "</section>\n"
        return o
    }

    /// Severity colours (INFO grey, LOW blue, MEDIUM amber, HIGH red, CRITICAL dark red) for the
    /// matrix and for the marks in the sequence diagrams, and the class that hides what a click
    /// deselected.
    public static let css = """
        .cell-off{display:none!important}
        table.matrix{width:auto}table.matrix td.cell{text-align:center;min-width:5.5em;color:var(--muted)}
        table.matrix td.cell button{font:inherit;font-size:12px;border:0;border-radius:9px;padding:1px 8px;color:#fff;cursor:pointer}
        td.cell.sev-critical button{background:var(--crit)}td.cell.sev-high button{background:var(--high)}td.cell.sev-medium button{background:var(--med)}td.cell.sev-low button{background:var(--low)}td.cell.sev-info button{background:var(--info)}
        button.pick[aria-pressed=true]{outline:3px solid #18222f;outline-offset:1px}
        th button.pick,td button.pick:not(td.cell button){font:inherit;font-weight:600;background:none;border:1px solid var(--line);border-radius:6px;cursor:pointer;padding:1px 6px}
        tr.srow.sev-critical td:first-child{border-left:4px solid var(--crit)}tr.srow.sev-high td:first-child{border-left:4px solid var(--high)}tr.srow.sev-medium td:first-child{border-left:4px solid var(--med)}tr.srow.sev-low td:first-child{border-left:4px solid var(--low)}tr.srow.sev-info td:first-child{border-left:4px solid var(--info)}
        .pickbar{margin:6px 0}
        .vcount.sev-critical{color:var(--crit);font-weight:600}.vcount.sev-high{color:var(--high);font-weight:600}.vcount.sev-medium{color:#a35b00}.vcount.sev-low{color:var(--low)}.vcount.sev-info{color:var(--info)}
        svg .vdot.sev-critical{fill:var(--crit)}svg .vdot.sev-high{fill:var(--high)}svg .vdot.sev-medium{fill:var(--med)}svg .vdot.sev-low{fill:var(--low)}svg .vdot.sev-info{fill:var(--info)}
        svg .vrule.sev-critical{fill:var(--crit)}svg .vrule.sev-high{fill:var(--high)}svg .vrule.sev-medium{fill:#a35b00}svg .vrule.sev-low{fill:var(--low)}svg .vrule.sev-info{fill:var(--info)}
        svg .flagged.sev-critical .arrow{stroke:var(--crit)}svg .flagged.sev-critical .head{fill:var(--crit)}svg .flagged.sev-high .arrow{stroke:var(--high)}svg .flagged.sev-high .head{fill:var(--high)}
        svg .flagged.sev-medium .arrow{stroke:var(--med)}svg .flagged.sev-medium .head{fill:var(--med)}svg .flagged.sev-low .arrow{stroke:var(--low)}svg .flagged.sev-low .head{fill:var(--low)}
        svg .flagged.sev-info .arrow{stroke:#24425f}svg .flagged.sev-info .head{fill:#24425f}
        """

    /// The click handling: a constant, allowed by the page's Content-Security-Policy by its hash.
    public static let script = """
        (function () {
          'use strict';
          var picks = document.querySelectorAll('button.pick');
          if (!picks.length) return;
          var status = document.getElementById('cell-status');
          var clear = document.getElementById('cell-clear');
          var current = '';
          function has(list, token) { return (' ' + (list || '') + ' ').indexOf(' ' + token + ' ') >= 0; }
          function show(token, label) {
            current = token;
            var targets = document.querySelectorAll('article.exchange, tr.vrow, tr.crow');
            var counts = {exchange: 0, vrow: 0, crow: 0};
            for (var i = 0; i < targets.length; i++) {
              var t = targets[i];
              var on = !token || has(t.getAttribute('data-cells'), token);
              t.classList.toggle('cell-off', !on);
              if (on) counts[t.classList.contains('exchange') ? 'exchange' : t.classList.contains('vrow') ? 'vrow' : 'crow']++;
            }
            for (var k = 0; k < picks.length; k++) picks[k].setAttribute('aria-pressed', token && picks[k].getAttribute('data-cell') === token ? 'true' : 'false');
            clear.hidden = !token;
            status.textContent = token
              ? 'Showing ' + label + ': ' + counts.exchange + ' exchange' + (counts.exchange === 1 ? '' : 's') + ', ' + counts.vrow + ' finding' + (counts.vrow === 1 ? '' : 's') + ', ' + counts.crow + ' connection' + (counts.crow === 1 ? '' : 's') + '.'
              : 'Showing everything.';
            document.body.setAttribute('data-cell', token);
          }
          for (var p = 0; p < picks.length; p++) {
            picks[p].addEventListener('click', function (ev) {
              var b = ev.currentTarget, token = b.getAttribute('data-cell');
              show(token === current ? '' : token, b.getAttribute('title') || b.textContent);
            });
          }
          clear.addEventListener('click', function () { show('', ''); });
          show('', '');
          document.body.setAttribute('data-servers', 'ready');
        })();
        """

    /// `sha256-…` of `script` (a test recomputes it).
    public static let scriptHash = "sha256-BBt15X6K4MdAQ5qYWVr3hq4pyWGwN5/TmMKNEH+bAsQ="
}
