import Foundation
import S2Synth
import S2TestSupport
import Testing

/// `analyze --facts` and `correlate` against `analyze` on the whole capture (issue #19).
@Suite struct CorrelateTests {
    static let labDir = repoRoot.appendingPathComponent("fixtures/lab")
    static let multiDir = repoRoot.appendingPathComponent("fixtures/multisensor")

    /// Every lab capture (a rotated set counts as one capture of three files), and the
    /// three-server capture of fixtures/multisensor.
    static let captures: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: labDir.path)) ?? []
        return names.filter { $0.hasSuffix(".truth.json") }.map { String($0.dropLast(".truth.json".count)) }
            .filter { !$0.hasPrefix("rotated-") }.sorted() + ["multisensor/three-server"]
    }()

    static func files(of name: String) throws -> [String] {
        if name.hasPrefix("multisensor/") { return [repoRoot.appendingPathComponent("fixtures/\(name).pcap").path] }
        let truth = try JSONSerialization.jsonObject(with: Data(contentsOf: labDir.appendingPathComponent("\(name).truth.json"))) as! [String: Any]
        let files = (truth["captures"] as? [String]) ?? [truth["capture"] as? String ?? "\(name).pcap"]
        return files.map { labDir.appendingPathComponent($0).path }
    }

    /// Host names and secrets the transcript declares (`#!host`, `#!secret`), as analysis options.
    static func options(of name: String) throws -> [String] {
        guard name.hasPrefix("multisensor/") else { return [] }
        let text = try String(contentsOf: repoRoot.appendingPathComponent("fixtures/\(name).txt"), encoding: .utf8)
        var out: [String] = []
        for line in text.split(separator: "\n") where line.hasPrefix("#!") {
            let parts = line.dropFirst(2).split(separator: " ", maxSplits: 1)
            if parts.count == 2 { out += ["--\(parts[0] == "host" ? "host" : "dialback-secret")", String(parts[1])] }
        }
        return out
    }

    func tempPath(_ suffix: String) -> String { NSTemporaryDirectory() + "s2scope-corr-\(UUID().uuidString)\(suffix)" }

    func json(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
    }

    /// The verdicts a report gives, named by what they are, not by frame or connection numbers
    /// (which differ between a whole capture and a sensor's part of it).
    static func verdicts(_ r: [String: Any]) -> [String] {
        var endpoints: [String: String] = [:]
        for c in r["connections"] as? [[String: Any]] ?? [] {
            endpoints[c["id"] as! String] = "\(c["client"]!)>\(c["server"]!)"
        }
        func conn(_ id: Any?) -> String { (id as? String).flatMap { endpoints[$0] } ?? "-" }
        func scrub(_ s: Any?) -> String {
            (s as? String ?? "").replacingOccurrences(of: #"\bC[0-9]+\b"#, with: "C#", options: .regularExpression)
                .replacingOccurrences(of: #"\bframe [0-9]+"#, with: "frame #", options: .regularExpression)
                .replacingOccurrences(of: #"\bpacket [0-9]+"#, with: "packet #", options: .regularExpression)
        }
        var out: [String] = []
        for v in r["violations"] as? [[String: Any]] ?? [] {
            out.append("violation \(v["rule"]!) \(v["severity"]!) \(v["direction"]!) \(v["actor"]!) \(conn(v["connection"])) \(v["time"]!) \(scrub(v["message"])) \(scrub(v["evidence"]))")
        }
        for d in r["dialbacks"] as? [[String: Any]] ?? [] {
            out.append("dialback \(d["originating"]!)>\(d["receiving"]!) id=\(d["stream_id"] ?? "-") outcome=\(d["outcome"] ?? "-") verify=\(d["verify_type"] ?? "-") result-on=\(conn(d["result_connection"])) verify-on=\(conn(d["verify_connection"])) \(d["seconds_to_outcome"] ?? "-")")
        }
        return out.sorted()
    }

    func analyzeWhole(_ name: String) throws -> [String: Any] {
        let out = tempPath(".json")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try runS2Scope(["analyze", "-q", "--format", "json", "-o", out] + Self.options(of: name) + Self.files(of: name))
        #expect(r.status == 0 || r.status == 1, "\(name): \(r.stderr)")
        return try json(out)
    }

    /// One sensor's facts from its captures.
    func facts(sensor: String, _ files: [String], options: [String]) throws -> String {
        let path = tempPath(".facts")
        let r = try runS2Scope(["analyze", "-q", "--facts", path, "--sensor", sensor, "-o", "/dev/null"] + options + files)
        #expect(r.status == 0 || r.status == 1, "\(sensor): \(r.stderr)")
        return path
    }

    func correlate(_ facts: [String], options: [String]) throws -> [String: Any] {
        let out = tempPath(".json")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try runS2Scope(["correlate", "--format", "json", "-o", out] + options + facts)
        #expect(r.status == 0 || r.status == 1, "\(r.stderr)")
        return try json(out)
    }

    /// One sensor's facts, replayed alone, give the very report `analyze` gives (only the input
    /// names and the run time differ): the facts are the correlator's whole input.
    @Test(arguments: captures)
    func oneSensorReplaysToTheSameReport(_ name: String) throws {
        let opts = try Self.options(of: name)
        let whole = try analyzeWhole(name)
        let f = try facts(sensor: "s1", try Self.files(of: name), options: opts)
        defer { try? FileManager.default.removeItem(atPath: f) }
        var replayed = try correlate([f], options: opts)
        var w = whole
        for k in ["inputs"] { w[k] = nil; replayed[k] = nil }
        var ws = w["summary"] as! [String: Any], rs = replayed["summary"] as! [String: Any]
        ws["seconds"] = nil; rs["seconds"] = nil
        w["summary"] = ws; replayed["summary"] = rs
        let a = try JSONSerialization.data(withJSONObject: w, options: [.sortedKeys, .prettyPrinted])
        let b = try JSONSerialization.data(withJSONObject: replayed, options: [.sortedKeys, .prettyPrinted])
        #expect(a == b, "\(name): the replayed report differs")
        // Evidence names the sensor and the file.
        let inputs = replayed["inputs"] as? [[String: Any]] ?? []
        #expect(inputs.allSatisfy { ($0["path"] as? String ?? "").hasPrefix("s1/") })
    }

    /// With XML parsing on worker threads the correlator is fed in the same order: the facts are
    /// byte for byte those of a single-threaded run.
    @Test(arguments: captures)
    func factsDoNotDependOnParsingThreads(_ name: String) throws {
        let opts = try Self.options(of: name)
        let one = try facts(sensor: "s", try Self.files(of: name), options: opts)
        let three = try facts(sensor: "s", try Self.files(of: name), options: opts + ["--threads", "3"])
        defer { for p in [one, three] { try? FileManager.default.removeItem(atPath: p) } }
        let a = try Data(contentsOf: URL(fileURLWithPath: one)), b = try Data(contentsOf: URL(fileURLWithPath: three))
        #expect(!a.isEmpty && a == b, "\(name)")
    }

    /// TLS captures decrypted with their key logs (fixtures/tls): the decrypted events are facts
    /// like any other (the key log stays with the sensor), and the TLS parameters and certificates
    /// come back in the replayed report.
    static let tlsCaptures: [String] = {
        let dir = repoRoot.appendingPathComponent("fixtures/tls")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".truth.json") }.map { String($0.dropLast(".truth.json".count)) }.sorted()
    }()

    @Test(arguments: tlsCaptures)
    func tlsCaptureReplaysToTheSameReport(_ name: String) throws {
        let dir = repoRoot.appendingPathComponent("fixtures/tls")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        let keylogs = names.filter { $0.hasPrefix(name + ".") && $0.hasSuffix(".keylog") }.sorted().flatMap { ["--keylog", dir.appendingPathComponent($0).path] }
        #expect(!keylogs.isEmpty)
        let capture = dir.appendingPathComponent("\(name).pcap").path
        let whole = tempPath(".json"), f = tempPath(".facts")
        defer { for p in [whole, f] { try? FileManager.default.removeItem(atPath: p) } }
        let r = try runS2Scope(["analyze", "-q", "--format", "json", "-o", whole, "--facts", f, "--sensor", "s"] + keylogs + [capture])
        #expect(r.status == 0 || r.status == 1, "\(r.stderr)")
        var w = try json(whole)
        var replayed = try correlate([f], options: [])
        #expect(((w["connections"] as? [[String: Any]]) ?? []).contains { $0["tls_info"] != nil })
        for k in ["inputs"] { w[k] = nil; replayed[k] = nil }
        var ws = w["summary"] as! [String: Any], rs = replayed["summary"] as! [String: Any]
        ws["seconds"] = nil; rs["seconds"] = nil
        w["summary"] = ws; replayed["summary"] = rs
        let a = try JSONSerialization.data(withJSONObject: w, options: [.sortedKeys, .prettyPrinted])
        let b = try JSONSerialization.data(withJSONObject: replayed, options: [.sortedKeys, .prettyPrinted])
        #expect(a == b, "\(name): the replayed report differs")
    }

    /// The addresses that took part in TCP connections of a report.
    static func hosts(_ report: [String: Any]) -> [String] {
        var hosts = Set<String>()
        for c in report["connections"] as? [[String: Any]] ?? [] {
            for k in ["client", "server"] {
                if let e = c[k] as? String, let colon = e.lastIndex(of: ":") { hosts.insert(String(e[..<colon])) }
            }
        }
        return hosts.sorted()
    }

    /// The part of `files` a sensor on `host` would have recorded (tcpdump's filter by host).
    func split(_ files: [String], host: String) throws -> [String] {
        try files.enumerated().map { i, f in
            let out = tempPath("-\(host)-\(i).pcap")
            let r = try runProcess("/usr/bin/env", ["tcpdump", "-r", f, "-w", out, "host", host])
            #expect(r.status == 0, "tcpdump: \(r.stderr)")
            return out
        }
    }

    /// Every lab capture cut into one capture per host, one sensor each, joined by `correlate`,
    /// gives the violations, dialback exchanges and outcomes of the whole capture.
    @Test(arguments: captures)
    func sensorPerHostGivesTheWholeVerdicts(_ name: String) throws {
        let opts = try Self.options(of: name)
        let whole = try analyzeWhole(name)
        let expected = Self.verdicts(whole)
        let hosts = Self.hosts(whole)
        var facts: [String] = []
        var parts: [String] = []
        defer { for p in facts + parts { try? FileManager.default.removeItem(atPath: p) } }
        for h in hosts {
            let mine = try split(try Self.files(of: name), host: h)
            parts += mine
            facts.append(try self.facts(sensor: "sensor-\(h)", mine, options: opts))
        }
        let joined = try correlate(facts, options: opts)
        let got = Self.verdicts(joined)
        #expect(got == expected, "\(name) split over \(hosts): \(Set(got).symmetricDifference(expected).sorted())")
        // Every connection is counted once although two sensors saw it.
        #expect((joined["connections"] as? [Any])?.count == (whole["connections"] as? [Any])?.count)
    }

    /// Three servers: the db:result leg is seen only by the sensor of the a.lab node that sends,
    /// the verify leg only by the sensor of the a.lab node that answers; b.lab has no sensor.
    /// Joined, the exchanges and b.lab's DB-CORR-6 are those of the whole capture; each sensor
    /// alone cannot see them.
    @Test func verifyLegSeenOnlyByTheThirdSensor() throws {
        let name = "multisensor/three-server"
        let opts = try Self.options(of: name)
        let whole = try analyzeWhole(name)
        let expected = Self.verdicts(whole)
        #expect(expected.contains { $0.hasPrefix("violation DB-CORR-6 critical") })
        #expect(expected.filter { $0.hasPrefix("dialback ") }.count == 2)
        var facts: [String] = []
        var parts: [String] = []
        defer { for p in facts + parts { try? FileManager.default.removeItem(atPath: p) } }
        for h in ["10.53.0.11", "10.53.0.12"] {
            let mine = try split(try Self.files(of: name), host: h)
            parts += mine
            facts.append(try self.facts(sensor: "node-\(h)", mine, options: opts))
        }
        #expect(Self.verdicts(try correlate(facts, options: opts)) == expected)
        // Either sensor alone sees half of each exchange.
        for f in facts {
            let alone = Self.verdicts(try correlate([f], options: opts))
            #expect(!alone.contains { $0.hasPrefix("violation DB-CORR-6") })
        }
        // The evidence names the sensor, the file and the frame.
        let joined = try correlate(facts, options: opts)
        let inputs = (joined["inputs"] as? [[String: Any]] ?? []).map { $0["path"] as? String ?? "" }
        #expect(inputs.count == 2 && inputs[0].hasPrefix("node-10.53.0.11/") && inputs[1].hasPrefix("node-10.53.0.12/"))
        let corr6 = (joined["violations"] as? [[String: Any]] ?? []).first { $0["rule"] as? String == "DB-CORR-6" }
        #expect(corr6?["input"] as? Int != nil && corr6?["packet"] as? Int != nil)
    }

    /// Facts come from elsewhere: a file that is not facts, of another version, or whose lines lie
    /// (a frame of an input the header does not list, an event ending before it starts, a time at
    /// the end of the range, XML that is not one element) is refused with exit 2 and the line, never a trap.
    @Test func hostileFactsAreRefusedWithTheLine() throws {
        let header = #"{"format":"s2scope-facts/1","inputs":[{"format":"pcap","link_type":"EN10MB","path":"x.pcap"}],"sensor":"s","t":"header","tool":"0"}"#
        let open = #"{"c":1,"client":"10.0.0.1:4000","client_address":"10.0.0.1","frame":{"i":0,"n":1,"t":1},"handshake":true,"now":0,"seq":[1,null],"server":"10.0.0.2:5269","server_address":"10.0.0.2","t":"open"}"#
        let cases: [(String, String)] = [
            ("not json\n", "not a fact line"),
            (#"{"t":"open"}"# + "\n", "not a facts header"),
            (#"{"format":"s2scope-facts/9","t":"header"}"# + "\n", "not supported"),
            (header + "\n" + open.replacingOccurrences(of: #""i":0"#, with: #""i":7"#) + "\n", "does not list"),
            (header + "\n" + open + "\n" + #"{"c":1,"d":0,"end_offset":1,"first":{"i":0,"n":2,"t":2},"kind":"stream-closed","last":{"i":0,"n":2,"t":2},"now":1,"start":5,"t":"event"}"# + "\n", "ends before it starts"),
            (header + "\n" + open + "\n" + #"{"c":1,"d":0,"end_offset":9,"first":{"i":0,"n":2,"t":9223372036854775807},"kind":"element","xml":"<a><b></a>","last":{"i":0,"n":2,"t":9223372036854775807},"now":9223372036854775807,"start":0,"t":"event"}"# + "\n", "does not parse"),
        ]
        for (text, why) in cases {
            let path = tempPath(".facts")
            defer { try? FileManager.default.removeItem(atPath: path) }
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            for extra in [[path], ["--max-skew", "1", path, path]] {
                let r = try runS2Scope(["correlate"] + extra)
                #expect(r.status == 2, "\(why): \(r.status) \(r.stderr)")
                #expect(r.stderr.contains(why), "\(why): \(r.stderr)")
            }
        }
        // Times at the ends of the range, connections never opened, unknown line kinds: analysed.
        let odd = header + "\n" + #"{"now":-9223372036854775808,"t":"time"}"# + "\n" + open.replacingOccurrences(of: #""t":1}"#, with: #""t":9223372036854775807}"#) + "\n"
            + #"{"anomaly":"gap","c":99,"message":"x","t":"anomaly"}"# + "\n" + #"{"t":"from-the-future"}"# + "\n"
            + #"{"c":1,"end":"fin","last":{"i":0,"n":3,"t":-9223372036854775808},"now":9223372036854775807,"t":"close"}"# + "\n"
        let path = tempPath(".facts")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(odd.utf8).write(to: URL(fileURLWithPath: path))
        let r = try runS2Scope(["correlate", "--format", "json", path, path])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        // The connection carried no XMPP: counted (once per copy of the file: one sensor's two files
        // are two captures), not listed.
        #expect((j?["connections"] as? [Any])?.count == 0)
        #expect((j?["summary"] as? [String: Any])?["tcp_connections_without_xmpp"] as? Int == 2)
    }

    /// `--facts -` puts the facts alone on standard output (the report only with -o); a stream of
    /// several facts files one after another is read as those files.
    @Test func factsOnStandardOutputAndConcatenatedStreams() throws {
        let name = "multisensor/three-server"
        let opts = try Self.options(of: name)
        let files = try Self.files(of: name)
        let html = tempPath(".html")
        defer { try? FileManager.default.removeItem(atPath: html) }
        let r = try runS2Scope(["analyze", "-q", "--facts", "-", "--sensor", "n", "--html", html] + opts + files)
        #expect(r.status == 1, "\(r.stderr)")  // DB-CORR-6 is critical
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix(#"{"format":"s2scope-facts/1""#) == true)
        #expect(lines.allSatisfy { $0.hasPrefix("{") && $0.hasSuffix("}") })
        #expect(lines.last?.contains(#""t":"end""#) == true)
        #expect((try? String(contentsOfFile: html, encoding: .utf8))?.contains("DB-CORR-6") == true)
        let bad = try runS2Scope(["analyze", "--sensor", "n"] + files)
        #expect(bad.status == 2 && bad.stderr.contains("--sensor"))

        var parts: [String] = []
        defer { for p in parts { try? FileManager.default.removeItem(atPath: p) } }
        for h in ["10.53.0.11", "10.53.0.12"] {
            let mine = try split(files, host: h)
            parts += mine
            parts.append(try facts(sensor: "node-\(h)", mine, options: opts))
        }
        let factFiles = parts.filter { $0.hasSuffix(".facts") }
        let separate = try correlate(factFiles, options: opts)
        let stream = try factFiles.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }.reduce(Data(), +)
        let piped = try runS2Scope(["correlate", "--format", "json"] + opts + ["-"], stdin: stream)
        #expect(piped.status == 1, "\(piped.stderr)")
        let joined = try JSONSerialization.jsonObject(with: Data(piped.stdout.utf8)) as! [String: Any]
        #expect(Self.verdicts(joined) == Self.verdicts(separate))
        #expect(Self.verdicts(joined).contains { $0.hasPrefix("violation DB-CORR-6") })
    }

    /// The committed capture is what its transcript makes (S2SCOPE_REGENERATE=1 rewrites it).
    @Test func threeServerCaptureIsItsTranscript() throws {
        let text = try String(contentsOf: Self.multiDir.appendingPathComponent("three-server.txt"), encoding: .utf8)
        let pcap = try Transcript(text).pcap
        let path = Self.multiDir.appendingPathComponent("three-server.pcap")
        if ProcessInfo.processInfo.environment["S2SCOPE_REGENERATE"] == "1" {
            try Data(pcap).write(to: path)
        }
        #expect(try Data(contentsOf: path) == Data(pcap))
    }

    /// The two a.lab nodes' sensors share no connection, and the verify leg's sensor runs 20 s
    /// ahead. Within a 30 s tolerance the dialback steps align the clocks and the verdicts are
    /// those of the whole capture; with 5 s the steps meet only beyond the tolerance: what did not
    /// meet (b.lab's valid answers "without verification") is an anomaly, not a violation.
    @Test func skewOnlyDialbackStepsCanAlign() throws {
        let name = "multisensor/three-server"
        let opts = try Self.options(of: name)
        let expected = Self.verdicts(try analyzeWhole(name))
        var cleanup: [String] = []
        defer { for p in cleanup { try? FileManager.default.removeItem(atPath: p) } }
        var facts: [String] = []
        for h in ["10.53.0.11", "10.53.0.12"] {
            var mine = try split(try Self.files(of: name), host: h)
            cleanup += mine
            if h == "10.53.0.12" {
                let shifted = tempPath("-shifted.pcap")
                let r = try runProcess("/usr/bin/env", ["editcap", "-t", "20", mine[0], shifted])
                #expect(r.status == 0, "editcap: \(r.stderr)")
                cleanup.append(shifted)
                mine = [shifted]
            }
            let f = try self.facts(sensor: "node-\(h)", mine, options: opts)
            cleanup.append(f)
            facts.append(f)
        }
        func timeless(_ v: [String]) -> [String] {
            v.map { $0.replacingOccurrences(of: #" 20[0-9-]+T[0-9:.]+Z"#, with: "", options: .regularExpression)
                .replacingOccurrences(of: #" [0-9]+\.[0-9]+$"#, with: "", options: .regularExpression) }.sorted()
        }
        let aligned = try correlate(facts, options: opts + ["--max-skew", "30"])
        #expect(timeless(Self.verdicts(aligned)) == timeless(expected))
        #expect((aligned["anomalies"] as? [[String: Any]] ?? []).allSatisfy { $0["kind"] as? String != "clock-skew" })

        let strict = try correlate(facts, options: opts + ["--max-skew", "5"])
        let rules = (strict["violations"] as? [[String: Any]] ?? []).map { $0["rule"] as? String ?? "" }
        #expect(!rules.contains("DB-CORR-9") && !rules.contains("DB-CORR-6"), "\(rules)")
        let skew = (strict["anomalies"] as? [[String: Any]] ?? []).filter { $0["kind"] as? String == "clock-skew" }
        #expect(skew.count == 2)
        #expect(skew.allSatisfy { ($0["message"] as? String ?? "").contains("DB-CORR-9 not reported") })
    }

    /// Two sensors whose clocks disagree by 40 s: the clocks are aligned on the connections both
    /// saw, and the joined verdicts are those of one clock.
    @Test func skewedSensorClocksAreAligned() throws {
        let name = "multisensor/three-server"
        let opts = try Self.options(of: name)
        let expected = Self.verdicts(try analyzeWhole(name))
        var cleanup: [String] = []
        defer { for p in cleanup { try? FileManager.default.removeItem(atPath: p) } }
        var facts: [String] = []
        for (h, shift) in [("10.53.0.11", "0"), ("10.53.0.2", "40"), ("10.53.0.12", "0")] {
            var mine = try split(try Self.files(of: name), host: h)
            cleanup += mine
            if shift != "0" {
                let shifted = tempPath("-shifted.pcap")
                let r = try runProcess("/usr/bin/env", ["editcap", "-t", shift, mine[0], shifted])
                #expect(r.status == 0, "editcap: \(r.stderr)")
                cleanup.append(shifted)
                mine = [shifted]
            }
            let f = try self.facts(sensor: "node-\(h)", mine, options: opts)
            cleanup.append(f)
            facts.append(f)
        }
        // b.lab's sensor (40 s ahead) is listed first: the others are aligned to its clock, so
        // compare without the absolute times.
        let joined = Self.verdicts(try correlate([facts[1], facts[0], facts[2]], options: opts))
        func timeless(_ v: [String]) -> [String] {
            v.map { $0.replacingOccurrences(of: #" 20[0-9-]+T[0-9:.]+Z"#, with: "", options: .regularExpression) }.sorted()
        }
        #expect(timeless(joined) == timeless(expected))
    }
}
