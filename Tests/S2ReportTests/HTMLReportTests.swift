import S2TestSupport
import Foundation
import S2Engine
import S2Model
import S2Report
import S2Rules
import Testing

/// The HTML report (`--html`), rendered by headless Chromium. Serialized: one browser at a time.
@Suite(.serialized)
struct HTMLReportTests {
    static let prosody = repoRoot.appendingPathComponent("fixtures/lab/prosody-prosody.pcap").path
    static let ejabberd = repoRoot.appendingPathComponent("fixtures/lab/prosody-ejabberd.pcap").path

    /// Writes `--html` and `--format json` for `inputs` and returns (html path, JSON document).
    func analyze(_ inputs: [String], in dir: URL) throws -> (URL, [String: Any]) {
        let html = dir.appendingPathComponent("report.html")
        let r = try runS2Scope(["analyze", "--quiet", "--format", "json", "--html", html.path] + inputs)
        #expect(r.status == 0 || r.status == 1, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        return (html, json)
    }

    @Test func chromiumRendersDiagramsFiltersAndTables() throws {
        let dir = try scratchDirectory("html")
        defer { try? FileManager.default.removeItem(at: dir) }
        for input in [Self.prosody, Self.ejabberd] {
            let (html, json) = try analyze([input], in: dir)
            let raw = try String(contentsOf: html, encoding: .utf8)
            let dom = try Chromium.dumpDOM(html)
            let dialbacks = try #require(json["dialbacks"] as? [[String: Any]])
            let violations = try #require(json["violations"] as? [[String: Any]])
            let connections = try #require(json["connections"] as? [[String: Any]])
            #expect(dialbacks.count == 2)

            // One SVG sequence diagram per exchange, three lanes each, one arrow per step.
            #expect(dom.occurrences(of: "<svg class=\"seq\"") == dialbacks.count, "\(input)")
            #expect(dom.occurrences(of: "<g class=\"lane") == 3 * dialbacks.count)
            let steps = dialbacks.reduce(0) { n, d in
                n + 1 + ["verify_packet", "verify_reply_packet", "result_reply_packet"].filter { d[$0] != nil }.count
            }
            #expect(dom.occurrences(of: "<g class=\"step") == steps)
            #expect(dom.occurrences(of: "data-kind=\"db:result\"") == dialbacks.count)
            #expect(dom.occurrences(of: "data-kind=\"db:verify reply\"") == dialbacks.filter { $0["verify_reply_packet"] != nil }.count)
            for d in dialbacks {
                #expect(dom.contains("data-exchange=\"\(d["id"] as! String)\""))
                let frame = d["result_packet"] as! Int
                #expect(dom.contains("frame \(frame) · \(d["result_connection"] as! String)"), "arrow label with frame and connection")
            }
            // Lanes carry the domains and the addresses seen on the wire.
            for c in connections {
                let address = String((c["client"] as! String).split(separator: ":").first!)
                #expect(dom.contains(">\(address)</text>"), "lane label \(address)")
            }
            // Violations on a step's frame and connection are marked on its arrow.
            #expect(dom.contains("<g class=\"vmark\" data-severity=\"info\" data-rule=\"DB-SYN-1\">"))

            // Filters exist, and the (CSP-allowed) script ran and counted the rows.
            #expect(dom.occurrences(of: "name=\"sev\"") == 5)
            #expect(dom.contains("id=\"f-rule\"") && dom.contains("id=\"f-domain\""))
            #expect(dom.contains("<option value=\"STREAM-FEAT-2\">STREAM-FEAT-2</option>"))
            #expect(dom.contains("data-filters=\"ready\""), "the filter script did not run")
            #expect(dom.contains(">\(violations.count) of \(violations.count) violations shown</output>"))

            // Violations table: a row per violation with rule, severity and evidence; connections table.
            #expect(dom.occurrences(of: "<tr class=\"vrow") == violations.count)
            #expect(dom.contains("data-severity=\"low\" data-rule=\"STREAM-FEAT-2\""))
            #expect(dom.contains("<td class=\"rule\">STREAM-FEAT-2</td>"))
            #expect(dom.occurrences(of: "<tr class=\"crow\"") == connections.count)

            // Self-contained: nothing fetched from anywhere.
            for needle in ["http://", "https://", "@import", "url(", "<link", "src=\""] {
                #expect(!raw.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "")
                    .replacingOccurrences(of: "http://etherx.jabber.org/streams", with: "")
                    .contains(needle), "\(needle) in the page")
            }
            #expect(raw.utf8.count < 200_000, "page size \(raw.utf8.count)")
        }
    }

    /// The filters work: preset from the address, they hide the rows, exchanges and markers that
    /// do not match (the script runs in Chromium; its result is read back from the DOM).
    @Test func filtersHideWhatDoesNotMatch() throws {
        let dir = try scratchDirectory("html-filter")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (html, json) = try analyze([repoRoot.appendingPathComponent("fixtures/lab/wrong-secret.pcap").path], in: dir)
        let violations = try #require(json["violations"] as? [[String: Any]])
        func page(_ fragment: String) -> URL { URL(string: html.absoluteString + "#" + fragment)! }
        func hiddenRows(_ dom: String) -> Int {
            dom.components(separatedBy: "<tr class=\"vrow").dropFirst().filter { $0.prefix(while: { $0 != ">" }).contains(" hidden") }.count
        }

        let byRule = try Chromium.dumpDOM(page("rule=DB-SYN-1"))
        let syn = violations.filter { $0["rule"] as? String == "DB-SYN-1" }.count
        #expect(syn == 3)
        #expect(byRule.contains(">\(syn) of \(violations.count) violations shown</output>"))
        #expect(hiddenRows(byRule) == violations.count - syn)
        #expect(byRule.occurrences(of: "<article class=\"exchange\"") == 3)
        #expect(byRule.components(separatedBy: "<article class=\"exchange\"").dropFirst().filter { $0.prefix(while: { $0 != ">" }).contains(" hidden") }.isEmpty,
                "every exchange has a DB-SYN-1 marker")

        let bySeverity = try Chromium.dumpDOM(page("severity=medium,high,critical"))
        let serious = violations.filter { ["medium", "high", "critical"].contains($0["severity"] as! String) }.count
        #expect(bySeverity.contains(">\(serious) of \(violations.count) violations shown</output>"))
        #expect(bySeverity.contains("class=\"vmark dim\" data-severity=\"info\" data-rule=\"DB-SYN-1\""), "info markers are dimmed")

        let none = try Chromium.dumpDOM(page("domain=nobody.invalid&rule=DB-RCV-5"))
        #expect(none.contains(">1 of \(violations.count) violations shown</output>"), "an unknown domain leaves the domain filter off")
    }

    /// Colours follow severity: a flagged arrow takes the class of the most severe finding on its
    /// step, each marker that of its own finding, and an info-only step is grey (never red).
    @Test func flaggedArrowsAreColouredByTheirMostSevereFinding() throws {
        let dir = try scratchDirectory("html-colours")
        defer { try? FileManager.default.removeItem(at: dir) }
        var classesSeen = Set<String>()
        for input in [Self.prosody, repoRoot.appendingPathComponent("fixtures/lab/wrong-secret.pcap").path,
                      repoRoot.appendingPathComponent("fixtures/lab/unsolicited-verify.pcap").path] {
            let (html, json) = try analyze([input], in: dir)
            let raw = try String(contentsOf: html, encoding: .utf8)
            let violations = try #require(json["violations"] as? [[String: Any]])
            let rank = ["info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4]
            let steps = raw.components(separatedBy: "<g class=\"step").dropFirst()
            #expect(!steps.isEmpty)
            for step in steps {
                let head = String(step.prefix(while: { $0 != ">" }))
                func attribute(_ name: String) -> String? {
                    head.components(separatedBy: " \(name)=\"").dropFirst().first.map { String($0.prefix(while: { $0 != "\"" })) }
                }
                let frame = try #require(attribute("data-frame").flatMap { Int($0) })
                let connection = try #require(attribute("data-connection"))
                let onStep = violations.filter { $0["packet"] as? Int == frame && $0["connection"] as? String == connection }
                let worst = onStep.compactMap { $0["severity"] as? String }.max { rank[$0]! < rank[$1]! }
                if let worst {
                    #expect(head.hasPrefix(" flagged sx-\(worst)\""), "\(input) frame \(frame): \(head)")
                    classesSeen.insert(worst)
                } else {
                    #expect(head.hasPrefix("\""), "unflagged step \(head)")
                }
            }
            #expect(!raw.contains("class=\"warn\">") || raw.contains("truncated"), "violation counts use severity colours")
        }
        #expect(classesSeen == ["info", "medium", "high"], "\(classesSeen)")
        let css = try String(contentsOf: repoRoot.appendingPathComponent("Sources/S2Report/HTMLReport.swift"), encoding: .utf8)
        #expect(css.contains("--info:#6b7785") && css.contains("svg .sx-info .arrow{stroke:var(--info)}"))
        #expect(!css.contains("svg .flagged .arrow"), "one colour for every flagged arrow")
    }

    /// A screenshot for people (and the README): `.build-artifacts/report-screenshot.png`
    /// (docs/report-screenshot.png is a copy of one).
    @Test func screenshotIsAnArtifact() throws {
        let dir = try scratchDirectory("html-shot")
        defer { try? FileManager.default.removeItem(at: dir) }
        // Three exchanges, one answered invalid (a wrong dialback secret), with findings on their arrows.
        let html = dir.appendingPathComponent("report.html")
        let r = try runS2Scope(["analyze", "--quiet", "--html", html.path, "-o", dir.appendingPathComponent("r.txt").path,
                                "fixtures/lab/wrong-secret.pcap"], in: repoRoot)
        #expect(r.status == 0 || r.status == 1, "\(r.stderr)")
        let png = try artifactsDirectory().appendingPathComponent("report-screenshot.png")
        try Chromium.screenshot(html, to: png)
        let bytes = try Data(contentsOf: png)
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
        #expect(bytes.count > 20_000, "screenshot of \(bytes.count) bytes looks empty")
    }

    /// Wire text that tries to inject markup, script or terminal control comes out inert.
    @Test func hostileWireTextIsInert() throws {
        let dir = try scratchDirectory("html-hostile")
        defer { try? FileManager.default.removeItem(at: dir) }
        let pcap = dir.appendingPathComponent("hostile.pcap")
        #expect(FileManager.default.createFile(atPath: pcap.path, contents: Data(try HostileCapture.pcap)), "\(pcap.path) could not be written")

        // The text report: no control character from the wire reaches the terminal.
        let text = try runS2Scope(["analyze", "--no-color", "--verbose", pcap.path])
        #expect(text.status == 1)
        #expect(text.stdout.contains("<script>alert(1)</script>"), "the text report shows domains as they are")
        #expect(text.stdout.contains("ansi\\x9b31m.example\\x9d0;pwned-title\\x9c"))
        #expect(text.stdout.contains("\\u{202e}evil"))
        for bad: Unicode.Scalar in ["\u{1b}", "\u{07}", "\u{9b}", "\u{9d}", "\u{202e}"] {
            #expect(!text.stdout.unicodeScalars.contains(bad), "U+\(String(bad.value, radix: 16)) in the text report")
        }

        // Report from the CLI, plus findings whose message/evidence carry 7-bit ANSI sequences and
        // markup (XML forbids ESC, so no parser path delivers it today — the renderers must still hold).
        let report = try Engine.analyze(transcript: HostileCapture.transcript)
        let x = try #require(report.exchanges.first)
        let step = try #require(x.steps.first)
        let evil = "\u{1b}[31mred\u{1b}]0;pwned-title\u{07} <script>document.title='pwned'</script>\"><img src=x onerror=alert(1)>"
        report.violations.append(Violation(rule: "X-1\"><svg onload=alert(1)>", severity: .critical, connection: step.connection,
                                           direction: step.direction, actor: .originating, frame: step.frame,
                                           message: "message " + evil, evidence: "<evidence>" + evil))
        report.inputs[0].path = "/tmp/\u{1b}]0;pwned-title\u{07}<script>alert(1)</script>.pcap"
        report.anomalies.append(Anomaly(kind: .xmlDesync, connection: step.connection, frame: step.frame, message: evil))

        let plain = TextReport(color: false, verbose: true).render(report)
        for bad: Unicode.Scalar in ["\u{1b}", "\u{07}", "\u{9b}", "\u{202e}"] {
            #expect(!plain.unicodeScalars.contains(bad), "U+\(String(bad.value, radix: 16)) in the text report")
        }
        #expect(plain.contains("\\x1b[31mred\\x1b]0;pwned-title\\x07"))

        let page = HTMLReport().render(report)
        for bad: Unicode.Scalar in ["\u{1b}", "\u{07}", "\u{9b}", "\u{9d}", "\u{202e}"] {
            #expect(!page.unicodeScalars.contains(bad), "U+\(String(bad.value, radix: 16)) in the page")
        }
        #expect(!page.contains("<img") && !page.contains("<svg onload") && !page.contains("<script>alert")
                && !page.contains("<script>document"))
        #expect(page.occurrences(of: "<script") == 2, "only the report's own scripts (filters, server table)")
        let html = dir.appendingPathComponent("hostile.html")
        try page.write(to: html, atomically: true, encoding: .utf8)

        let dom = try Chromium.dumpDOM(html)
        #expect(dom.occurrences(of: "<script") == 2, "an injected script element exists")
        #expect(!dom.contains("<img") && !dom.contains("<svg onload"), "an injected element exists")
        let headTitle = dom.components(separatedBy: "<title>").dropFirst().first?.components(separatedBy: "</title>").first
        #expect(headTitle == "S2Scope report", "document.title was changed: \(headTitle ?? "-")")
        #expect(dom.contains("data-filters=\"ready\""), "the report's own script ran")
        #expect(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the markup is shown as text")
        #expect(dom.contains("\"&gt;&lt;img src=x onerror=alert(1)&gt;"))
        #expect(dom.contains("\\x1b[31mred\\x1b]0;pwned-title\\x07"), "ANSI sequences are shown as text")
        #expect(dom.contains("<option value=\"X-1&quot;&gt;&lt;svg onload=alert(1)&gt;\">"))
        for bad: Unicode.Scalar in ["\u{1b}", "\u{07}", "\u{9b}", "\u{202e}"] {
            #expect(!dom.unicodeScalars.contains(bad), "U+\(String(bad.value, radix: 16)) in the DOM")
        }

        // The CLI's page of the same capture is inert too.
        let cliPage = dir.appendingPathComponent("cli.html")
        let r = try runS2Scope(["analyze", "--quiet", "--html", cliPage.path, "-o", dir.appendingPathComponent("r.txt").path, pcap.path])
        #expect(r.status == 1, "\(r.stderr)")
        let cliDOM = try Chromium.dumpDOM(cliPage)
        #expect(cliDOM.occurrences(of: "<script") == 2 && !cliDOM.contains("<img"))
        #expect(cliDOM.contains("<title>S2Scope report</title>") && cliDOM.contains("data-filters=\"ready\""))
        #expect(cliDOM.occurrences(of: "<svg class=\"seq\"") == 1)
    }

    @Test func escapeFunctionCoversMarkupQuotesAndControls() {
        #expect(htmlEscape("<a href=\"x\" title='y'>&</a>") == "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;")
        #expect(htmlEscape("\u{1b}[31m\u{07}\u{9b}\u{202e}\u{0}") == "\\x1b[31m\\x07\\x9b\\u{202e}\\x00")
        #expect(htmlEscape("a\tb\nc é ☃") == "a\tb\nc é ☃")
    }

    /// The builder escapes every run-time string (text and attribute values); only literals reach
    /// the page as markup.
    @Test func builderEscapesTextAndAttributesByConstruction() {
        let evil = "</td><script>alert(1)</script>\"' \u{1b}[31m"
        var h = HTMLBuilder()
        h.element("tr", ["class": "vrow", "data-rule": evil]) { h in
            h.element("td", text: evil)
            h.element("td") { h in
                h.text(42)
                h.constant(" <b>literal</b> ")
                h.void("input", ["value": evil], flags: ["checked"])
                h.empty("rect", ["x": "1"])
            }
        }
        let esc = "&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39; \\x1b[31m"
        #expect(h.output == "<tr class=\"vrow\" data-rule=\"\(esc)\"><td>\(esc)</td><td>42 <b>literal</b> <input value=\"\(esc)\" checked><rect x=\"1\"/></td></tr>")
        var outer = HTMLBuilder()
        outer.element("div", text: "a & b")
        outer.append(h)
        #expect(outer.output.hasPrefix("<div>a &amp; b</div><tr class=\"vrow\""))
    }

    /// The page's Content-Security-Policy allows its one inline script by hash; the hash must
    /// follow the script (recomputed here with python3's hashlib).
    @Test func contentSecurityPolicyHashMatchesTheScript() throws {
        let r = try runTool("/usr/bin/python3", ["-c", "import sys,hashlib,base64; print('sha256-'+base64.b64encode(hashlib.sha256(sys.stdin.buffer.read()).digest()).decode())"],
                            stdin: Data(HTMLReport.script.utf8))
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == HTMLReport.scriptHash,
                "update HTMLReport.scriptHash to \(r.stdout)")
        let page = HTMLReport().render(AnalysisReport())
        #expect(page.contains("script-src '\(HTMLReport.scriptHash)' '\(ServerTableHTML.scriptHash)'"))
        #expect(page.contains("<script>\(HTMLReport.script)</script>"))
        let servers = try runTool("/usr/bin/python3", ["-c", "import sys,hashlib,base64; print('sha256-'+base64.b64encode(hashlib.sha256(sys.stdin.buffer.read()).digest()).decode())"],
                                  stdin: Data(ServerTableHTML.script.utf8))
        #expect(servers.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == ServerTableHTML.scriptHash,
                "update ServerTableHTML.scriptHash to \(servers.stdout)")
        #expect(page.contains("<script>\(ServerTableHTML.script)</script>"))
    }
}
