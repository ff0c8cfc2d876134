import S2TestSupport
import Foundation
import S2Report
import Testing

/// The HTML server table and conformance matrix (issue #18), driven in headless Chromium with
/// real mouse clicks (scripts/html-drive.py): a click on a cell shows only the exchanges,
/// findings and connections of that server and rule; colours follow severity.
extension HTMLReportTests {
    static let multiServer = repoRoot.appendingPathComponent("fixtures/lab/multi-server.pcap").path

    /// Visible exchange ids, violation rows (rule per row) and connection ids, as the page shows them.
    static let visible = """
        JSON.stringify({
          exchanges: Array.from(document.querySelectorAll('article.exchange')).filter(function (a) { return a.offsetParent !== null; }).map(function (a) { return a.id; }),
          findings: Array.from(document.querySelectorAll('tr.vrow')).filter(function (r) { return r.offsetParent !== null; }).map(function (r) { return r.getAttribute('data-rule'); }),
          connections: Array.from(document.querySelectorAll('tr.crow')).filter(function (r) { return r.offsetParent !== null; }).map(function (r) { return r.firstElementChild.textContent; }),
          pressed: Array.from(document.querySelectorAll('button.pick[aria-pressed=true]')).map(function (b) { return b.getAttribute('data-cell'); }),
          status: document.getElementById('cell-status').textContent
        })
        """

    struct Shown: Decodable, Equatable {
        var exchanges: [String]
        var findings: [String]
        var connections: [String]
        var pressed: [String]
        var status: String
    }

    static func shown(_ any: Any) throws -> Shown {
        try JSONDecoder().decode(Shown.self, from: Data(try #require(any as? String).utf8))
    }

    @Test func serverMatrixCellFiltersTheDiagrams() throws {
        let dir = try scratchDirectory("html-servers")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (html, json) = try analyze([Self.multiServer], in: dir)
        let servers = try #require(json["servers"] as? [[String: Any]])
        let dialbacks = try #require(json["dialbacks"] as? [[String: Any]])
        let violations = try #require(json["violations"] as? [[String: Any]])
        let connections = try #require(json["connections"] as? [[String: Any]])
        // The matrix as the page renders it: a row per server, a column per rule, "SEV n" cells.
        let dom = try Chromium.dumpDOM(html)
        #expect(dom.contains("data-servers=\"ready\""), "the server table's script did not run under the CSP")
        #expect(dom.occurrences(of: "<tr class=\"srow") == servers.count)
        let rules = ["STANZA-ADDR-4", "DB-CORR-9", "STANZA-ADDR-5", "STREAM-FEAT-2", "DB-ADV-1", "DB-SYN-1", "STREAM-HDR-8"]
        for (k, s) in servers.enumerated() {
            for (j, rule) in rules.enumerated() {
                let f = (s["findings"] as! [[String: Any]]).filter { $0["rule"] as? String == rule }
                if f.isEmpty {
                    #expect(!dom.contains("data-cell=\"c\(k)-\(j)\""))
                } else {
                    let count = f.reduce(0) { $0 + ($1["count"] as! Int) }
                    let sev = ["critical": "CRIT", "high": "HIGH", "medium": "MED", "low": "LOW", "info": "INFO"][f[0]["severity"] as! String]!
                    #expect(dom.contains("data-cell=\"c\(k)-\(j)\" aria-pressed=\"false\" title=\""), "\(s["id"]!) \(rule)")
                    #expect(dom.contains("\">\(sev) \(count)</button></td>"), "\(s["id"]!) \(rule): \(sev) \(count)")
                }
            }
        }

        // What a click on (server, rule) must show: the exchanges with a step on a connection where
        // that server broke that rule, those findings, those connections.
        func expected(_ k: Int, _ rule: String) -> Shown {
            let s = servers[k]
            let addresses = Set(s["addresses"] as! [String])
            let conns = Dictionary(uniqueKeysWithValues: connections.map { ($0["id"] as! String, $0) })
            func host(_ e: String) -> String { String(e.split(separator: ":").first!) }
            let mine = violations.filter { v in
                guard v["rule"] as? String == rule, let c = conns[v["connection"] as! String] else { return false }
                let sender = v["direction"] as? String == "client-to-server" ? host(c["client"] as! String) : host(c["server"] as! String)
                let actor = v["actor"] as! String
                let charged = actor == "initiator" ? host(c["client"] as! String) : actor == "acceptor" ? host(c["server"] as! String) : sender
                return addresses.contains(charged)
            }
            let onConns = Set(mine.map { $0["connection"] as! String })
            let xs = dialbacks.filter { d in
                onConns.contains(d["result_connection"] as! String) || (d["verify_connection"] as? String).map(onConns.contains) == true
            }.map { $0["id"] as! String }
            return Shown(exchanges: xs, findings: mine.map { $0["rule"] as! String },
                         connections: connections.map { $0["id"] as! String }.filter(onConns.contains), pressed: [], status: "")
        }

        let evil = try #require(servers.firstIndex { ($0["domains"] as? [String]) == ["evil.lab"] })
        let a = try #require(servers.firstIndex { ($0["domains"] as? [String]) == ["a.lab"] })
        let lazy = try #require(servers.firstIndex { ($0["domains"] as? [String]) == ["lazy.lab"] })
        let results = try Chromium.drive(html, [
            ["eval": Self.visible],
            ["click": "button[data-cell=\"c\(evil)-0\"]"], ["eval": Self.visible],
            ["click": "button[data-cell=\"c\(evil)-0\"]"], ["eval": Self.visible],
            ["click": "button[data-cell=\"c\(a)-3\"]"], ["eval": Self.visible],
            ["click": "tr.srow button[data-cell=\"s\(lazy)\"]"], ["eval": Self.visible],
            ["click": "#cell-clear"], ["eval": Self.visible],
        ])
        let all = try Self.shown(results[0])
        #expect(all.exchanges.count == 15 && all.findings.count == violations.count && all.connections.count == connections.count)
        #expect(all.pressed.isEmpty && all.status == "Showing everything.")

        let spoof = try Self.shown(results[2])
        let wantSpoof = expected(evil, "STANZA-ADDR-4")
        #expect(spoof.exchanges == wantSpoof.exchanges && spoof.exchanges == ["D13"], "\(spoof.exchanges)")
        #expect(spoof.findings == ["STANZA-ADDR-4"])
        #expect(spoof.connections == wantSpoof.connections && spoof.connections == ["C16"])
        #expect(spoof.pressed == ["c\(evil)-0"])
        #expect(spoof.status.hasPrefix("Showing S\(evil + 1) evil.lab: STANZA-ADDR-4") && spoof.status.hasSuffix("1 exchange, 1 finding, 1 connection."), "\(spoof.status)")

        #expect(try Self.shown(results[4]).exchanges.count == 15, "a second click on the same cell shows everything again")

        let feat = try Self.shown(results[6])
        let wantFeat = expected(a, "STREAM-FEAT-2")
        #expect(feat.exchanges == wantFeat.exchanges, "\(feat.exchanges) vs \(wantFeat.exchanges)")
        #expect(feat.findings == wantFeat.findings && feat.findings.count == 6)
        #expect(feat.connections == wantFeat.connections)

        // A server: the exchanges it took part in (lazy.lab: only c.lab's dialback toward it).
        let server = try Self.shown(results[8])
        #expect(server.exchanges == ["D15"], "\(server.exchanges)")
        #expect(Set(server.findings) == ["DB-CORR-9", "STREAM-FEAT-2"])
        #expect(server.pressed.count == 2, "both buttons of the server (matrix and table) show as pressed: \(server.pressed)")

        let cleared = try Self.shown(results[10])
        #expect(cleared.exchanges.count == 15 && cleared.pressed.isEmpty)
    }

    /// Colours follow severity: an INFO mark is grey, never red; cells take their severity's colour.
    @Test func severityColoursInMatrixAndDiagrams() throws {
        let dir = try scratchDirectory("html-colours")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (html, _) = try analyze([Self.multiServer], in: dir)
        func style(_ selector: String, _ property: String) -> [String: Any] {
            ["eval": "getComputedStyle(document.querySelector('\(selector)')).\(property)"]
        }
        let r = try Chromium.drive(html, [
            style("svg .step.flagged.sx-info .arrow", "stroke"),
            style("svg .vdot.sx-info", "fill"),
            style("td.cell.sev-info button", "backgroundColor"),
            style("td.cell.sev-low button", "backgroundColor"),
            style("td.cell.sev-medium button", "backgroundColor"),
            style("td.cell.sev-critical button", "backgroundColor"),
            ["eval": "document.querySelectorAll('svg .step.flagged').length"],
            ["eval": "document.querySelectorAll('svg .step.flagged.sx-info').length"],
            ["eval": "Array.from(document.querySelectorAll('.vcount')).map(function (e) { return e.className; }).join(' ')"],
            style("svg .step.flagged.sx-medium .arrow", "stroke"),
            ["eval": "document.querySelector('svg .step.flagged.sx-medium').getAttribute('data-frame')"],
        ])
        let colours = r.prefix(6).map { $0 as? String ?? "" }
        #expect(colours[0] == "rgb(107, 119, 133)", "an arrow with only an INFO note is grey: \(colours[0])")
        #expect(colours[1] == "rgb(107, 119, 133)", "INFO dot: \(colours[1])")
        #expect(colours[2] == "rgb(107, 119, 133)" && colours[3] == "rgb(31, 120, 180)" && colours[4] == "rgb(217, 122, 0)"
                && colours[5] == "rgb(122, 0, 16)", "\(colours)")
        // The reds (HIGH, the old marker colour) are nowhere on INFO.
        for c in [colours[0], colours[1], colours[2]] { #expect(!["rgb(198, 40, 40)", "rgb(211, 47, 47)", "rgb(122, 0, 16)"].contains(c), "red on INFO: \(c)") }
        // multi-server: the findings on dialback steps are INFO notes (DB-SYN-1), except lazy.lab's
        // valid without verification (DB-CORR-9, MEDIUM, frame 335): one amber arrow.
        #expect((r[7] as? Int ?? 0) > 0 && r[6] as? Int == (r[7] as? Int ?? 0) + 1, "\(r[6]) flagged, \(r[7]) INFO")
        #expect(r[9] as? String == "rgb(217, 122, 0)" && r[10] as? String == "335", "\(r[9]) \(r[10])")
        let counts = r[8] as? String ?? ""
        #expect(!counts.contains("tx-high") && counts.contains("vcount tx-info") && counts.contains("vcount tx-medium"), "\(counts)")
    }

    /// docs/servers-screenshot.png: the page after a click on evil.lab's STANZA-ADDR-4 cell
    /// (written to .build-artifacts/; the committed copy is from this test).
    @Test func serverTableScreenshotIsAnArtifact() throws {
        let dir = try scratchDirectory("html-servers-shot")
        defer { try? FileManager.default.removeItem(at: dir) }
        let html = dir.appendingPathComponent("report.html")
        let r = try runS2Scope(["analyze", "--quiet", "--html", html.path, "-o", dir.appendingPathComponent("r.txt").path,
                                "fixtures/lab/multi-server.pcap"], in: repoRoot)
        #expect(r.status == 1, "\(r.stderr)")
        let png = try artifactsDirectory().appendingPathComponent("servers-screenshot.png")
        try? FileManager.default.removeItem(at: png)
        let page = try String(contentsOf: html, encoding: .utf8)
        let row = try #require(page.components(separatedBy: "<tr class=\"srow").firstIndex { $0.contains(">evil.lab</td>") }) - 1
        let out = try Chromium.drive(html, [["click": "button[data-cell=\"c\(row)-0\"]"],
                                            ["screenshot": png.path, "width": 1400, "height": 2300]])
        #expect((out[1] as? Int ?? 0) > 50_000)
        let bytes = try Data(contentsOf: png)
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
    }
}
