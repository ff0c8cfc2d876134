import S2Dialback
import S2Model
import S2Rules

/// Escapes text for HTML element content and quoted attribute values (also inside inline SVG):
/// `&`, `<`, `>`, `"` and `'` become character references, and control characters (ESC, BEL,
/// CR, C1 controls, bidi overrides, line/paragraph separators) become visible `\x1b`-style
/// text, as `terminalSafe` shows them. Tab and line feed are kept. Every string that came off
/// the wire passes through here before it reaches the page.
public func htmlEscape(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count + 16)
    for u in s.unicodeScalars {
        switch u {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        case "\n", "\t": out.unicodeScalars.append(u)
        default:
            let v = u.value
            if v < 0x20 || v == 0x7f || (v >= 0x80 && v < 0xa0) || v == 0x2028 || v == 0x2029
                || (v >= 0x202a && v <= 0x202e) || (v >= 0x2066 && v <= 0x2069) || v == 0xfeff {
                let hex = String(v, radix: 16)
                out += v > 0xff ? "\\u{\(hex)}" : "\\x" + (hex.count == 1 ? "0" : "") + hex
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out
}

/// The report as one self-contained HTML page: summary, filters (severity, rule, domain), a
/// sequence diagram per dialback exchange, the violations, connections and anomalies.
/// Filters can be preset from the address: `report.html#rule=DB-SYN-1&severity=high,critical&domain=a.example`.
///
/// No network fetches: CSS and JavaScript are inline, fonts are the system's. The script is a
/// constant (it reads only `data-` attributes holding escaped values or report-made tokens) and
/// a Content-Security-Policy allows only that script, by its hash — so even markup that slipped
/// through could not run. Without JavaScript everything is simply shown.
public struct HTMLReport {
    /// Anomalies listed in the page (all are counted).
    public var maxAnomalies: Int

    public init(maxAnomalies: Int = 2000) { self.maxAnomalies = maxAnomalies }

    public func render(_ r: AnalysisReport) -> String {
        let e = htmlEscape
        let multi = r.inputs.count > 1
        let domains = DomainIndex(r)
        let servers = ServerTableHTML(r)

        var o = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        o += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src '\(HTMLReport.scriptHash)' '\(ServerTableHTML.scriptHash)'\">\n"
        o += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        o += "<meta name=\"generator\" content=\"s2scope \(e(AnalysisReport.toolVersion))\">\n"
        o += "<title>S2Scope report</title>\n<style>\(HTMLReport.css)\n\(ServerTableHTML.css)</style>\n</head>\n<body>\n"
        o += "<header><h1>S2Scope report</h1><p class=\"sub\">XMPP server-to-server traffic and Server Dialback · s2scope \(e(AnalysisReport.toolVersion)) · schema \(e(AnalysisReport.schema))</p></header>\n<main>\n"

        // Summary.
        o += "<section id=\"summary\"><h2>Summary</h2>\n<div class=\"cards\">"
        o += card("connections", "\(r.statistics.tcpConnections)", "TCP connections", extra: "\(r.xmppStreamCount) XMPP streams")
        let outcomes = ["valid", "invalid", "error", "pending"]
        o += card("exchanges", "\(r.exchanges.count)", "dialback exchanges",
                  extra: outcomes.map { k in "<span class=\"oc oc-\(k)\">\(r.exchanges.filter { $0.outcomeName == k }.count) \(k)</span>" }.joined(separator: " "),
                  extraIsHTML: true)
        o += card("violations", "\(r.violations.count)", "violations",
                  extra: Severity.allCases.reversed().map { s in "<span class=\"sev sev-\(s.name)\">\(r.violations.filter { $0.severity == s }.count) \(s.name)</span>" }.joined(separator: " "),
                  extraIsHTML: true)
        o += card("anomalies", "\(r.anomalies.count)", "anomalies", extra: "\(r.statistics.packets) packets")
        o += "</div>\n"
        o += "<table class=\"inputs\"><thead><tr><th>#</th><th>input</th><th>format</th><th>link type</th><th>frames</th><th>bytes</th><th>state</th></tr></thead><tbody>\n"
        for (i, inp) in r.inputs.enumerated() {
            o += "<tr><td>\(i)</td><td class=\"path\">\(e(inp.path))</td><td>\(e(inp.format))</td><td>\(e(inp.linkType))</td><td>\(inp.packets)</td><td>\(inp.bytes)</td>"
            o += "<td>" + (inp.truncated ? "<span class=\"warn\">truncated: \(e(inp.note ?? ""))</span>" : "complete") + "</td></tr>\n"
        }
        o += "</tbody></table>\n"
        if r.statistics.encryptedBytes > 0 {
            o += "<p class=\"note\">\(r.statistics.encryptedBytes) bytes were inside TLS and not checked (rules there are unknown, not passed).</p>\n"
        }
        if !r.statistics.suppressedViolations.isEmpty {
            let s = r.statistics.suppressedViolations.sorted { $0.key < $1.key }.map { "\(e($0.key)) ×\($0.value)" }
            o += "<p class=\"note\">Repeats not listed: \(s.joined(separator: ", ")).</p>\n"
        }
        if !r.statistics.notJudgedByReason.isEmpty {
            let s = r.statistics.notJudgedByReason.sorted { $0.key < $1.key }.map { "\(e($0.key)) ×\($0.value)" }
            o += "<p class=\"note\">Not judged (the evidence was not in the capture, or a bound was reached): \(s.joined(separator: ", ")).</p>\n"
        }
        o += "</section>\n"

        // Servers and the conformance matrix (issue #18).
        o += servers.section()

        // Filters.
        let rules = Array(Set(r.violations.map(\.rule))).sorted()
        o += "<section id=\"filters\" class=\"filters\"><h2>Filters</h2><form id=\"filter-form\" autocomplete=\"off\">\n<fieldset><legend>severity</legend>"
        for s in Severity.allCases.reversed() {
            o += "<label class=\"sev sev-\(s.name)\"><input type=\"checkbox\" name=\"sev\" value=\"\(s.name)\" checked> \(s.name)</label> "
        }
        o += "</fieldset>\n<label>rule <select id=\"f-rule\" name=\"rule\"><option value=\"\">all rules</option>"
        for id in rules { o += "<option value=\"\(e(id))\">\(e(id))</option>" }
        o += "</select></label>\n<label>domain <select id=\"f-domain\" name=\"domain\"><option value=\"\">all domains</option>"
        for (i, d) in domains.all.enumerated() { o += "<option value=\"d\(i)\">\(e(clip(d, 80)))</option>" }
        o += "</select></label>\n<button type=\"reset\">reset</button> <output id=\"f-count\" aria-live=\"polite\"></output></form></section>\n"

        // Dialback exchanges.
        o += "<section id=\"exchanges\"><h2>Dialback exchanges (\(r.exchanges.count))</h2>\n"
        if r.exchanges.isEmpty { o += "<p class=\"none\">No dialback exchange was seen.</p>\n" }
        let byConnection = Dictionary(grouping: r.violations, by: \.connection)
        for x in r.exchanges {
            let conns = Set(x.steps.map(\.connection))
            let related = conns.sorted().flatMap { byConnection[$0] ?? [] }
            let diagram = SequenceDiagram(exchange: x, violations: related, showInput: multi)
            let onSteps = x.steps.flatMap { diagram.violations(on: $0) }
            let tokens = domains.tokens([x.originating, x.receiving])
            o += "<article class=\"exchange\" id=\"\(e(x.id))\" data-domains=\"\(tokens)\" data-rules=\"\(e(Set(onSteps.map(\.rule)).sorted().joined(separator: " ")))\"\(servers.attribute(exchange: x.number))>\n"
            o += "<h3>\(e(x.id)) <span class=\"dom\">\(e(x.originating))</span> → <span class=\"dom\">\(e(x.receiving))</span> "
            o += "<span class=\"oc oc-\(e(x.outcomeName))\">\(e(x.outcomeName))</span></h3>\n"
            o += "<p class=\"meta\">stream id <code>\(e(x.streamID ?? "(none)"))</code> · db:result on \(e(x.resultConnection.description)) frame \(x.resultFrame.number)"
            if let v = x.verifyConnection {
                o += " · db:verify on \(e(v.description)) frame \(x.verifyFrame?.number ?? 0) → \(e(x.verifyType ?? "no answer"))"
            } else {
                o += " · no db:verify seen"
            }
            if let f = x.resultReplyFrame { o += " · answer frame \(f.number) after \(fixed(f.time.secondsSince(x.resultFrame.time), 3)) s" }
            if let worst = onSteps.map(\.severity).max() {
                o += " · <span class=\"vcount sev-\(worst.name)\">\(onSteps.count) violation\(onSteps.count == 1 ? "" : "s") on its steps (worst \(worst.name))</span>"
            }
            o += "</p>\n<div class=\"diagram\">" + diagram.render() + "</div>\n</article>\n"
        }
        o += "</section>\n"

        // Violations.
        o += "<section id=\"violations\"><h2>Violations (\(r.violations.count))</h2>\n"
        if r.violations.isEmpty {
            o += "<p class=\"none\">No violation.</p>\n"
        } else {
            o += "<table class=\"violations\"><thead><tr><th>rule</th><th>severity</th><th>connection</th><th>direction</th><th>actor</th><th>frame</th><th>time</th><th>message</th><th>evidence</th></tr></thead><tbody>\n"
            for (i, v) in r.violations.enumerated() {
                let frame = "\(v.frame.number)" + (multi ? " <span class=\"in\">input \(v.frame.input)</span>" : "")
                o += "<tr class=\"vrow sev-\(e(v.severity.name))\" data-severity=\"\(e(v.severity.name))\" data-rule=\"\(e(v.rule))\" data-domains=\"\(domains.tokens(of: v.connection))\"\(servers.attribute(violation: i))>"
                o += "<td class=\"rule\">\(e(v.rule))</td><td><span class=\"sev sev-\(e(v.severity.name))\">\(e(v.severity.name))</span></td>"
                o += "<td>\(e(v.connection.description))</td><td>\(e(v.direction.reportName))</td><td>\(e(v.actor.rawValue))</td>"
                o += "<td class=\"num\">\(frame)</td><td class=\"time\">\(e(v.frame.time.rfc3339))</td>"
                o += "<td class=\"msg\">\(e(v.message))</td><td class=\"ev\"><pre>\(e(v.evidence))</pre></td></tr>\n"
            }
            o += "</tbody></table>\n"
        }
        o += "</section>\n"

        // Connections.
        o += "<section id=\"connections\"><h2>Connections (\(r.connections.count))</h2>\n"
        if r.connections.isEmpty {
            o += "<p class=\"none\">No TCP connection on the s2s ports.</p>\n"
        } else {
            o += "<table class=\"connections\"><thead><tr><th>id</th><th>input</th><th>client</th><th>server</th><th>frames</th><th>start</th><th>end</th><th>close</th><th>TLS</th><th>streams</th></tr></thead><tbody>\n"
            for c in r.connections {
                let last = c.closeFrame ?? c.lastFrame
                o += "<tr class=\"crow\" data-domains=\"\(domains.tokens(of: c.id))\"\(servers.attribute(connection: c.id))><td>\(e(c.id.description))</td><td class=\"num\">\(c.input)</td>"
                o += "<td class=\"addr\">\(e(c.client))</td><td class=\"addr\">\(e(c.server))</td><td class=\"num\">\(c.firstFrame.number)–\(last.number)</td>"
                o += "<td class=\"time\">\(e(c.firstFrame.time.rfc3339))</td><td class=\"time\">\(e(last.time.rfc3339))</td><td>\(e(c.close ?? "open"))</td><td>\(c.tls ? "yes" : "no")</td><td class=\"streams\">"
                for s in c.streams {
                    o += "<div><span class=\"dir\">\(e(s.direction.reportName))</span> to=<q>\(e(s.to ?? ""))</q> from=<q>\(e(s.from ?? ""))</q> id=<q>\(e(s.id ?? ""))</q> version=<q>\(e(s.version ?? ""))</q>\(s.closed ? " closed" : "")</div>"
                }
                o += "</td></tr>\n"
            }
            o += "</tbody></table>\n"
        }
        o += "</section>\n"

        // Anomalies.
        o += "<section id=\"anomalies\"><h2>Anomalies (\(r.anomalies.count))</h2><p class=\"note\">Capture and transport problems, not protocol violations.</p>\n"
        if !r.anomalies.isEmpty {
            o += "<table class=\"anomalies\"><thead><tr><th>kind</th><th>connection</th><th>frame</th><th>message</th></tr></thead><tbody>\n"
            for a in r.anomalies.prefix(maxAnomalies) {
                o += "<tr><td>\(e(a.kind.rawValue))</td><td>\(e(a.connection?.description ?? "-"))</td><td class=\"num\">\(a.frame.map { String($0.number) } ?? "-")</td><td class=\"msg\">\(e(a.message))</td></tr>\n"
            }
            o += "</tbody></table>\n"
            if r.anomalies.count > maxAnomalies { o += "<p class=\"note\">… \(r.anomalies.count - maxAnomalies) more in the JSON report.</p>\n" }
        }
        o += "</section>\n</main>\n<footer>Generated by s2scope \(e(AnalysisReport.toolVersion)). Frame numbers are per input file, as Wireshark counts them.</footer>\n"
        o += "<script>\(HTMLReport.script)</script>\n<script>\(ServerTableHTML.script)</script>\n</body>\n</html>\n"
        return o
    }

    private func card(_ id: String, _ value: String, _ label: String, extra: String, extraIsHTML: Bool = false) -> String {
        "<div class=\"card\" id=\"card-\(id)\"><div class=\"big\">\(htmlEscape(value))</div><div class=\"label\">\(htmlEscape(label))</div><div class=\"extra\">\(extraIsHTML ? extra : htmlEscape(extra))</div></div>"
    }

    /// The inline script: filters rows, exchanges and markers by `data-` attributes. It is a
    /// constant so that the page's Content-Security-Policy can allow it by hash.
    public static let script = """
        (function () {
          'use strict';
          var form = document.getElementById('filter-form');
          if (!form) return;
          function has(list, token) { return (' ' + (list || '') + ' ').indexOf(' ' + token + ' ') >= 0; }
          function apply() {
            var sev = {};
            var boxes = form.querySelectorAll('input[name=sev]');
            for (var i = 0; i < boxes.length; i++) sev[boxes[i].value] = boxes[i].checked;
            var rule = document.getElementById('f-rule').value;
            var dom = document.getElementById('f-domain').value;
            var rows = document.querySelectorAll('tr.vrow'), shown = 0;
            for (var j = 0; j < rows.length; j++) {
              var r = rows[j];
              var ok = sev[r.getAttribute('data-severity')] === true && (!rule || r.getAttribute('data-rule') === rule)
                && (!dom || has(r.getAttribute('data-domains'), dom));
              r.hidden = !ok;
              if (ok) shown++;
            }
            var xs = document.querySelectorAll('article.exchange');
            for (var k = 0; k < xs.length; k++) {
              var x = xs[k];
              x.hidden = !((!dom || has(x.getAttribute('data-domains'), dom)) && (!rule || has(x.getAttribute('data-rules'), rule)));
            }
            var marks = document.querySelectorAll('g.vmark');
            for (var m = 0; m < marks.length; m++) {
              var g = marks[m];
              var on = sev[g.getAttribute('data-severity')] === true && (!rule || g.getAttribute('data-rule') === rule);
              g.setAttribute('class', on ? 'vmark' : 'vmark dim');
            }
            var cs = document.querySelectorAll('tr.crow');
            for (var n = 0; n < cs.length; n++) cs[n].hidden = !(!dom || has(cs[n].getAttribute('data-domains'), dom));
            document.getElementById('f-count').textContent = shown + ' of ' + rows.length + ' violations shown';
          }
          // Initial filters from the address: #rule=DB-SYN-1&severity=high,critical&domain=a.example
          var parts = (location.hash || '').slice(1).split('&');
          for (var p = 0; p < parts.length; p++) {
            var kv = parts[p].split('=');
            if (kv.length !== 2) continue;
            var val;
            try { val = decodeURIComponent(kv[1]); } catch (err) { continue; }
            if (kv[0] === 'rule') document.getElementById('f-rule').value = val;
            if (kv[0] === 'severity') {
              var want = val.split(','), bs = form.querySelectorAll('input[name=sev]');
              for (var b = 0; b < bs.length; b++) bs[b].checked = want.indexOf(bs[b].value) >= 0;
            }
            if (kv[0] === 'domain') {
              var opts = document.getElementById('f-domain').options;
              for (var o = 0; o < opts.length; o++) if (opts[o].text === val) opts[o].selected = true;
            }
          }
          form.addEventListener('change', apply);
          form.addEventListener('reset', function () { setTimeout(apply, 0); });
          apply();
          document.body.setAttribute('data-filters', 'ready');
        })();
        """

    /// `sha256-…` of `script`, for the Content-Security-Policy (a test recomputes it).
    public static let scriptHash = "sha256-Z4fC47YAWnIZiV6WI1Z95qGrKvifRgd53FvfoYVG0+k="

    static let css = """
        :root{--fg:#1d232b;--muted:#5b6673;--line:#d5dbe2;--bg:#f6f8fa;--card:#fff;--crit:#7a0010;--high:#c62828;--med:#d97a00;--low:#1f78b4;--info:#6b7785;--ok:#2e7d32}
        *{box-sizing:border-box}
        body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;font-size:14px;color:var(--fg);background:var(--bg)}
        header{background:#18222f;color:#fff;padding:14px 24px}header h1{margin:0;font-size:22px}.sub{margin:4px 0 0;color:#c5d0dc}
        main{padding:8px 24px 24px}section{margin:18px 0}h2{font-size:18px;border-bottom:1px solid var(--line);padding-bottom:4px}
        h3{font-size:15px;margin:10px 0 4px}
        code,pre,.addr,.time,.rule,.path,q{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12px}
        q{quotes:"'" "'"}
        .cards{display:flex;flex-wrap:wrap;gap:12px}.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 16px;min-width:200px}
        .big{font-size:26px;font-weight:600}.label{color:var(--muted)}.extra{margin-top:4px}
        table{border-collapse:collapse;background:var(--card);width:100%;margin:8px 0}th,td{border:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
        th{background:#eef1f4;position:sticky;top:0}.num{text-align:right}
        td.ev pre{margin:0;white-space:pre-wrap;word-break:break-all;max-height:12em;overflow:auto}td.msg{max-width:28em}
        .sev{display:inline-block;padding:0 6px;border-radius:9px;color:#fff;font-size:12px}
        .sev-critical.sev{background:var(--crit)}.sev-high.sev{background:var(--high)}.sev-medium.sev{background:var(--med)}.sev-low.sev{background:var(--low)}.sev-info.sev{background:var(--info)}
        tr.sev-critical td:first-child{border-left:4px solid var(--crit)}tr.sev-high td:first-child{border-left:4px solid var(--high)}tr.sev-medium td:first-child{border-left:4px solid var(--med)}tr.sev-low td:first-child{border-left:4px solid var(--low)}tr.sev-info td:first-child{border-left:4px solid var(--info)}
        .oc{display:inline-block;padding:0 6px;border-radius:9px;font-size:12px;color:#fff;background:var(--info)}.oc-valid{background:var(--ok)}.oc-invalid,.oc-error{background:var(--high)}
        .filters form{display:flex;flex-wrap:wrap;gap:14px;align-items:center;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px 12px}
        fieldset{border:0;margin:0;padding:0}legend{float:left;margin-right:8px;color:var(--muted)}label.sev{cursor:pointer}
        select{max-width:22em}.warn{color:var(--high)}.note,.none,.meta{color:var(--muted)}.dom{font-family:ui-monospace,monospace}
        .exchange{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:4px 12px 8px;margin:12px 0}
        .diagram{overflow-x:auto}
        svg.seq{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;display:block}
        svg .lanebox{fill:#eef3f8;stroke:#8fa3b8}svg .unseen .lanebox{fill:#f7f7f7;stroke-dasharray:4 3}
        svg .role{font-size:11px;fill:var(--muted);text-transform:uppercase;letter-spacing:.04em}svg .domain{font-size:13px;font-weight:600;fill:var(--fg)}svg .addr{font-size:11px;fill:var(--muted)}
        svg .lifeline{stroke:#9aa8b6;stroke-dasharray:5 4}svg .arrow{stroke:#24425f;stroke-width:1.6}svg .head{fill:#24425f}
        svg .el{font-size:12px;font-family:ui-monospace,Menlo,Consolas,"DejaVu Sans Mono",monospace;fill:var(--fg)}svg .meta{font-size:11px;fill:var(--muted)}
        svg .vdot{fill:#d32f2f;stroke:#fff;stroke-width:1.5}svg .vrule{font-size:12px;fill:#b71c1c;font-weight:600}
        svg .flagged .arrow{stroke:#d32f2f}svg .flagged .head{fill:#d32f2f}svg .vmark.dim{opacity:.2}
        footer{color:var(--muted);padding:12px 24px;font-size:12px}[hidden]{display:none!important}
        """
}

/// Domains of the report (stream headers and exchanges), each with a token `dN` the filters use,
/// so that no domain text ever reaches the script.
struct DomainIndex {
    var all: [String] = []
    var index: [String: Int] = [:]
    var byConnection: [ConnectionID: [Int]] = [:]

    init(_ r: AnalysisReport) {
        var perConnection: [ConnectionID: [String]] = [:]
        for c in r.connections {
            for s in c.streams { perConnection[c.id, default: []] += [s.to, s.from].compactMap { $0 } }
        }
        for x in r.exchanges {
            for step in x.steps { perConnection[step.connection, default: []] += [x.originating, x.receiving] }
        }
        let names = Set(perConnection.values.joined().filter { !$0.isEmpty } + r.exchanges.flatMap { [$0.originating, $0.receiving] })
        all = names.sorted()
        for (i, d) in all.enumerated() { index[d] = i }
        for (c, ds) in perConnection { byConnection[c] = Array(Set(ds.compactMap { index[$0] })).sorted() }
    }

    func tokens(of c: ConnectionID) -> String { (byConnection[c] ?? []).map { "d\($0)" }.joined(separator: " ") }
    func tokens(_ names: [String]) -> String { Array(Set(names.compactMap { index[$0] })).sorted().map { "d\($0)" }.joined(separator: " ") }
}
