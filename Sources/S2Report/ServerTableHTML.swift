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

    /// The `data-cells` tokens of an exchange, a violation (by its index in the report) or a connection.
    public func cells(exchange number: Int) -> String { sorted(exchangeTokens[number]) }
    public func cells(violation index: Int) -> String { violationTokens[index] ?? "" }
    public func cells(connection id: ConnectionID) -> String { sorted(connectionTokens[id]) }

    static func shortName(_ s: Severity) -> String { TextReport.shortName(s) }

    /// The section as a string (tests, and pages built elsewhere).
    public func section() -> String {
        var h = HTMLBuilder()
        section(&h)
        return h.output
    }

    /// The section: the matrix, then the servers.
    public func section(_ h: inout HTMLBuilder) {
        h.constant("<section id=\"servers\">")
        h.element("h2", text: "Servers (\(table.rows.count))")
        h.constant("\n")
        defer { h.constant("</section>\n") }
        if table.rows.isEmpty { return note(&h, "none", "No server was seen.") }
        note(&h, "note", "One row per address, unless the capture links addresses to one server (one dialback key space or stream-id generator). Findings are charged to the server the rule names. Click a server or a cell of the matrix to show only its exchanges, findings and connections.")
        if table.rowsNotListed > 0 {
            note(&h, "note", "\(table.rowsNotListed) more servers with \(table.findingsNotListed) findings are not listed: only the \(table.rows.count) with the worst findings, then the most findings and connections, have a row.")
        }
        h.constant("<h3>Conformance matrix</h3><p class=\"note\">Worst severity and number of findings per server and rule.</p>\n")
        if table.rules.isEmpty {
            note(&h, "none", "No server broke a rule.")
        } else {
            h.constant("<table class=\"matrix\"><thead><tr><th>server</th>")
            for rule in table.rules { h.element("th", ["class": "rule"], text: rule) }
            h.constant("</tr></thead><tbody>\n")
            for (k, s) in table.rows.enumerated() {
                h.element("tr") { h in
                    h.element("th") { $0.element("button", ["type": "button", "class": "pick", "data-cell": "s\(k)", "aria-pressed": "false"], text: "\(s.id) \(clip(s.label, 40))") }
                    for (j, rule) in table.rules.enumerated() {
                        guard let w = s.worst(rule) else {
                            h.element("td", ["class": "cell"], text: "–")
                            continue
                        }
                        let n = s.count(rule)
                        let label = "\(s.id) \(s.label): \(rule), \(n) finding\(n == 1 ? "" : "s"), worst \(w.severity.name)"
                        h.element("td", ["class": "cell sev-\(w.severity.name)"]) { h in
                            h.element("button", ["type": "button", "class": "pick", "data-cell": "c\(k)-\(j)", "aria-pressed": "false", "title": label],
                                      text: "\(Self.shortName(w.severity)) \(n)")
                        }
                    }
                }
                h.constant("\n")
            }
            h.constant("</tbody></table>\n")
        }
        h.constant("<p class=\"pickbar\"><output id=\"cell-status\" aria-live=\"polite\">Showing everything.</output> <button type=\"button\" id=\"cell-clear\" hidden>show all</button></p>\n")
        h.constant("<h3>Servers</h3>\n")
        h.constant("<table class=\"servers\"><thead><tr><th>server</th><th>domains</th><th>addresses</th><th>roles</th><th>dialbacks</th><th>behaviour</th><th>findings</th></tr></thead><tbody>\n")
        for (k, s) in table.rows.enumerated() {
            let worst = s.findings.map(\.severity).max()
            h.element("tr", ["class": worst.map { "srow sev-\($0.name)" } ?? "srow", "id": "server-\(s.id)"]) { h in
                h.element("td") { $0.element("button", ["type": "button", "class": "pick", "data-cell": "s\(k)", "aria-pressed": "false", "title": s.grouping], text: s.id) }
                h.element("td", ["class": "dom"]) { h in
                    if !s.domains.isEmpty {
                        h.text(s.domains.joined(separator: ", "))
                    } else if s.stanzaDomains.isEmpty {
                        h.element("span", ["class": "none"], text: "none claimed")
                    } else {
                        h.element("span", ["class": "none"], text: "stanzas from")
                        h.text(" " + s.stanzaDomains.joined(separator: ", "))
                    }
                    if s.domainsNotListed > 0 {
                        h.constant(" ")
                        h.element("span", ["class": "none"], text: "(+\(s.domainsNotListed))")
                    }
                }
                h.element("td", ["class": "addr"], text: s.addresses.joined(separator: ", "))
                h.element("td", text: s.roles.joined(separator: ", "))
                h.element("td") { h in
                    let counts = [("valid", s.dialbacks.valid), ("invalid", s.dialbacks.invalid), ("error", s.dialbacks.error), ("pending", s.dialbacks.pending)]
                    for (i, (k, n)) in counts.filter({ $0.1 > 0 }).enumerated() {
                        if i > 0 { h.constant(" ") }
                        h.element("span", ["class": "oc oc-\(k)"], text: "\(n) \(k)")
                    }
                }
                h.element("td", ["class": "msg"]) { h in
                    h.text(TextReport.profileWords(s.profile).joined(separator: "; "))
                    if s.addresses.count > 1 || s.grouping.contains(";") { h.element("div", ["class": "meta"], text: s.grouping) }
                }
                h.element("td") { h in
                    for f in s.findings {
                        h.element("div") { h in
                            h.element("span", ["class": "sev sev-\(f.severity.name)"], text: f.severity.name)
                            h.constant(" ")
                            h.element("span", ["class": "rule"], text: f.rule)
                            h.text(" ×\(f.count) ")
                            h.element("span", ["class": "meta"],
                                      text: "\(f.first.time.rfc3339)\(f.count > 1 ? " – " + f.last.time.rfc3339 : ""), e.g. \(f.exampleConnection) frame \(f.exampleFrame.number)")
                        }
                    }
                    if s.findings.isEmpty { h.element("span", ["class": "none"], text: "none") }
                }
            }
            h.constant("\n")
        }
        h.constant("</tbody></table>\n")
    }

    private func note(_ h: inout HTMLBuilder, _ kind: StaticString, _ text: String) {
        h.element("p", ["class": kind.description], text: text)
        h.constant("\n")
    }

    /// The matrix cells and server rows in main's severity colours (the page's `--crit` … `--info`;
    /// the diagrams' marks use the page's own `sx-`/`tx-` classes), the pressed buttons, and the
    /// class that hides what a click deselected.
    static let cssLiteral: StaticString = """
        .cell-off{display:none!important}
        table.matrix{width:auto}table.matrix td.cell{text-align:center;min-width:5.5em;color:var(--muted)}
        table.matrix td.cell button{font:inherit;font-size:12px;border:0;border-radius:9px;padding:1px 8px;color:#fff;cursor:pointer}
        td.cell.sev-critical button{background:var(--crit)}td.cell.sev-high button{background:var(--high)}td.cell.sev-medium button{background:var(--med)}td.cell.sev-low button{background:var(--low)}td.cell.sev-info button{background:var(--info)}
        button.pick[aria-pressed=true]{outline:3px solid #18222f;outline-offset:1px}
        th button.pick,td button.pick:not(td.cell button){font:inherit;font-weight:600;background:none;border:1px solid var(--line);border-radius:6px;cursor:pointer;padding:1px 6px}
        tr.srow.sev-critical td:first-child{border-left:4px solid var(--crit)}tr.srow.sev-high td:first-child{border-left:4px solid var(--high)}tr.srow.sev-medium td:first-child{border-left:4px solid var(--med)}tr.srow.sev-low td:first-child{border-left:4px solid var(--low)}tr.srow.sev-info td:first-child{border-left:4px solid var(--info)}
        .pickbar{margin:6px 0}.vcount{font-weight:600}
        """

    public static var css: String { cssLiteral.description }

    /// The click handling: a constant, allowed by the page's Content-Security-Policy by its hash.
    static let scriptLiteral: StaticString = """
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

    public static var script: String { scriptLiteral.description }

    /// `sha256-…` of `script` (a test recomputes it).
    static let scriptHashLiteral: StaticString = "sha256-BBt15X6K4MdAQ5qYWVr3hq4pyWGwN5/TmMKNEH+bAsQ="
    public static var scriptHash: String { scriptHashLiteral.description }
}
