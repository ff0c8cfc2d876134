import S2TestSupport
import Foundation
import Testing

/// `--write-pcap`: the written capture, analysed again, gives the same violations on the same
/// connections; it keeps the link type; `--select` narrows it; standard input is refused.
struct PcapExportTests {
    typealias JSON = [String: Any]

    func analyzeJSON(_ args: [String]) throws -> (RunResult, JSON) {
        let r = try runS2Scope(["analyze", "--quiet", "--format", "json"] + args)
        #expect(r.status == 0 || r.status == 1, "\(args): \(r.stderr)")
        return (r, try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? JSON))
    }

    /// A connection's identity that survives renumbering: input path, 4-tuple, and the how-many-th
    /// connection with that 4-tuple.
    func keys(_ doc: JSON, inputPaths: [String]? = nil) -> [String: String] {
        var seen: [String: Int] = [:]
        var out: [String: String] = [:]
        for c in doc["connections"] as! [JSON] {
            let tuple = "\(c["client"] as! String)>\(c["server"] as! String)"
            let n = seen[tuple, default: 0]
            seen[tuple] = n + 1
            out[c["id"] as! String] = "\(tuple)#\(n)"
        }
        return out
    }

    /// (rule, direction, actor) per connection key.
    func findings(_ doc: JSON, only ids: Set<String>? = nil) -> [String: [String]] {
        let k = keys(doc)
        var out: [String: [String]] = [:]
        for id in k.keys where ids == nil || ids!.contains(id) { out[k[id]!] = [] }
        for v in doc["violations"] as! [JSON] {
            let id = v["connection"] as! String
            guard ids == nil || ids!.contains(id) else { continue }
            out[k[id]!, default: []].append("\(v["rule"]!) \(v["direction"]!) \(v["actor"]!)")
        }
        return out.mapValues { $0.sorted() }
    }

    /// What the export must hold: connections with a violation (of `rules`, if given), closed
    /// over the dialback exchanges that touch them.
    func expectedConnections(_ doc: JSON, rules: Set<String>? = nil) -> Set<String> {
        var chosen = Set((doc["violations"] as! [JSON]).filter { rules == nil || rules!.contains($0["rule"] as! String) }
            .map { $0["connection"] as! String })
        let groups = (doc["dialbacks"] as! [JSON]).map { Set([$0["result_connection"] as? String, $0["verify_connection"] as? String].compactMap { $0 }) }
        var grew = true
        while grew {
            grew = false
            for g in groups where !g.isDisjoint(with: chosen) && !g.isSubset(of: chosen) {
                chosen.formUnion(g)
                grew = true
            }
        }
        return chosen
    }

    static let captures: [String] = {
        let lab = repoRoot.appendingPathComponent("fixtures/lab")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: lab.path)) ?? []
        return names.filter { $0.hasSuffix(".pcap") }.sorted().map { lab.appendingPathComponent($0).path }
    }()

    @Test(arguments: captures + ["hostile"])
    func writtenCaptureReanalysesToTheSameViolations(_ input: String) throws {
        let dir = try scratchDirectory("export")
        defer { try? FileManager.default.removeItem(at: dir) }
        var path = input
        if input == "hostile" {
            path = dir.appendingPathComponent("hostile.pcap").path
            FileManager.default.createFile(atPath: path, contents: Data(try HostileCapture.pcap))
        }
        let out = dir.appendingPathComponent("selected.pcap").path
        let (_, original) = try analyzeJSON(["--write-pcap", out, path])
        let chosen = expectedConnections(original)
        // A clean lab capture (e.g. one picked up mid-stream) selects nothing: the export is then an
        // empty capture, which the checks below verify like any other.
        #expect(!chosen.isEmpty || input != "hostile", "the hostile capture has no violation: it should have some")
        let (_, again) = try analyzeJSON([out])
        // The same connections, with the same findings each.
        #expect(Set(keys(again).values) == Set(chosen.map { keys(original)[$0]! }), "\(input): connections differ")
        #expect(findings(again) == findings(original, only: chosen), "\(input): violations differ")
        // Same link type, and only frames of those connections.
        let inOriginal = (original["inputs"] as! [JSON])[0], inAgain = (again["inputs"] as! [JSON])[0]
        #expect(inAgain["link_type"] as? String == inOriginal["link_type"] as? String)
        let framesOfChosen = (original["connections"] as! [JSON]).filter { chosen.contains($0["id"] as! String) }
            .reduce(0) { $0 + ($1["last_packet"] as! Int) - ($1["first_packet"] as! Int) + 1 }
        #expect((inAgain["packets"] as! Int) <= framesOfChosen)
        #expect((again["dialbacks"] as! [Any]).count == (original["dialbacks"] as! [JSON]).filter { chosen.contains($0["result_connection"] as! String) }.count)
    }

    @Test func wiresharkToolsOpenTheWrittenCapture() throws {
        let tshark = "/usr/bin/tshark"
        guard FileManager.default.isExecutableFile(atPath: tshark) else { return }  // scripts/install-deps.sh test installs it
        let dir = try scratchDirectory("export-tshark")
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["prosody-prosody.pcap", "prosody-prosody-sll2.pcap"] {
            let out = dir.appendingPathComponent("w-\(name)").path
            _ = try analyzeJSON(["--write-pcap", out, repoRoot.appendingPathComponent("fixtures/lab/\(name)").path])
            let r = try runTool(tshark, ["-n", "-r", out, "-T", "fields", "-e", "frame.number", "-e", "tcp.dstport"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.split(separator: "\n").count == 57 || name.contains("sll"), "\(r.stdout)")
            #expect(r.stdout.contains("5269"))
        }
    }

    @Test func selectPicksConnectionsByRuleAndDomain() throws {
        let dir = try scratchDirectory("export-select")
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = repoRoot.appendingPathComponent("fixtures/lab/prosody-prosody.pcap").path
        let b = repoRoot.appendingPathComponent("fixtures/lab/bad-db-ns.pcap").path
        let out = dir.appendingPathComponent("sel.pcap").path

        // rule=DB-NS-1 fires only in the second input (of two): its one connection is written.
        let (r, original) = try analyzeJSON(["--write-pcap", out, "--select", "rule=DB-NS-1", a, b])
        #expect(r.stderr.isEmpty)
        let (_, again) = try analyzeJSON([out])
        #expect((again["connections"] as! [Any]).count == 1)
        let expected = expectedConnections(original, rules: ["DB-NS-1"])
        #expect(expected.count == 1)
        #expect(findings(again) == findings(original, only: expected))

        // domain=a.lab: the connections of the Prosody pair (whose exchanges name a.lab), not bad-db-ns's.
        let (_, byDomain) = try analyzeJSON(["--write-pcap", out, "--select", "domain=a.lab", a])
        let (_, domainAgain) = try analyzeJSON([out])
        #expect((domainAgain["connections"] as! [Any]).count == (byDomain["connections"] as! [Any]).count)
        #expect((domainAgain["dialbacks"] as! [Any]).count == 2)

        // Several --select are a union; a domain nobody names writes an empty, valid capture.
        let (_, _) = try analyzeJSON(["--write-pcap", out, "--select", "domain=nobody.invalid", a])
        let empty = try runS2Scope(["analyze", "--quiet", "--format", "json", out])
        #expect(empty.status == 0, "\(empty.stderr)")
        #expect(empty.stdout.contains("\"packets\": 0"))
    }

    @Test func badUsesExitTwo() throws {
        let dir = try scratchDirectory("export-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fixture = repoRoot.appendingPathComponent("fixtures/lab/prosody-prosody.pcap").path
        let out = dir.appendingPathComponent("x.pcap").path
        let stdin = try runS2Scope(["analyze", "--write-pcap", out, "-"], stdin: try Data(contentsOf: URL(fileURLWithPath: fixture)))
        #expect(stdin.status == 2)
        #expect(stdin.stderr.contains("standard input") && stdin.stderr.contains("--write-pcap"), "\(stdin.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(try runS2Scope(["analyze", "--select", "rule=DB-NS-1", fixture]).status == 2, "--select without --write-pcap")
        #expect(try runS2Scope(["analyze", "--write-pcap", out, "--select", "colour=red", fixture]).status == 2)
        #expect(try runS2Scope(["analyze", "--write-pcap", out, "--select", "rule=NOPE-1", fixture]).status == 2)
        // Connections from inputs of different link types cannot share one pcap.
        let sll = repoRoot.appendingPathComponent("fixtures/lab/prosody-prosody-sll.pcap").path
        let mixed = try runS2Scope(["analyze", "--write-pcap", out, fixture, sll])
        #expect(mixed.status == 2 && mixed.stderr.contains("link types"), "\(mixed.stderr)")
    }
}
