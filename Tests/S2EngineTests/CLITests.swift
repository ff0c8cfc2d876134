import S2TestSupport
import Foundation
import S2Synth
import Testing

/// Exit codes and messages of the command line, per REPORT.md.
struct CLITests {
    let fixture = repoRoot.appendingPathComponent("fixtures/lab/prosody-prosody.pcap").path

    @Test func missingEmptyAndNonCaptureFilesExitTwoWithOneLine() throws {
        for (path, needle) in [("/nonexistent/x.pcap", "No such file"),
                               (temporaryFile([]), "empty file"),
                               (temporaryFile(Array("just text\n".utf8)), "not a readable pcap"),
                               (temporaryFile([0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00]), "not a readable pcap")] {
            let r = try runS2Scope(["analyze", path])
            #expect(r.status == 2, "\(path): status \(r.status)")
            #expect(r.stderr.contains(needle), "\(path): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1)
            #expect(r.stdout.isEmpty)
        }
    }

    @Test func badArgumentsExitTwo() throws {
        #expect(try runS2Scope(["analyze"]).status == 2)
        #expect(try runS2Scope(["analyze", "--fail-on", "extreme", fixture]).status == 2)
        #expect(try runS2Scope(["analyze", "--disable", "NOPE-1", fixture]).status == 2)
        #expect(try runS2Scope(["frobnicate"]).status == 2)
        let f = try runS2Scope(["analyze", "--filter", "tcp port banana", fixture])
        #expect(f.status == 2 && f.stderr.contains("invalid --filter"))
    }

    @Test func helpTeachesAndExitsZero() throws {
        let r = try runS2Scope(["--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("Server Dialback") && r.stdout.contains("Examples:") && r.stdout.contains("Exit status"))
        let a = try runS2Scope(["analyze", "--help"])
        #expect(a.status == 0 && a.stdout.contains("--fail-on") && a.stdout.contains("--format"))
    }

    @Test func liveHelpTeachesWhatTheSensorSurvives() throws {
        let r = try runS2Scope(["live", "--help"])
        #expect(r.status == 0)
        for needle in ["SIGHUP", "capture-interrupted", "output-failed", "--metrics", "[::1]:9269", "CAP_NET_RAW", "Examples:"] {
            #expect(r.stdout.contains(needle), "live --help lacks \(needle)")
        }
    }

    @Test func livePrintsTheFilterItWouldCompile() throws {
        // No interface and no privileges needed: the filter is what a sensor would see of a capture.
        let d = try runS2Scope(["live", "--print-filter", "--port", "5270"])
        #expect(d.status == 0)
        #expect(d.stdout.hasPrefix("(tcp port 5270) or (ip[6:2] & 0x3fff != 0)") && !d.stdout.contains("5269"), "\(d.stdout)")
        let own = try runS2Scope(["live", "--print-filter", "--filter", "tcp port 5269 and host 192.0.2.1"])
        #expect(own.stdout == "tcp port 5269 and host 192.0.2.1\n")
    }

    @Test func liveRefusesMetricsAddressesItCannotUse() throws {
        // Checked before any capture is opened: no root needed.
        let v6 = try runS2Scope(["live", "-i", "lo", "--metrics", "::1:9269"])
        #expect(v6.status == 2 && v6.stderr.contains("[::1]:9269"), "the hint shows the bracketed form: \(v6.stderr)")
        let name = try runS2Scope(["live", "-i", "lo", "--metrics", "metrics.example:9269"])
        #expect(name.status == 2 && name.stderr.contains("not a numeric address"), "\(name.stderr)")
        let port = try runS2Scope(["live", "-i", "lo", "--metrics", "127.0.0.1:99999"])
        #expect(port.status == 2 && port.stderr.contains("port"), "\(port.stderr)")
    }

    @Test func liveRefusesAFollowedKeyLogWithParsingThreads() throws {
        // A key log that grows during the run cannot be read by parsing threads: refused before
        // any capture is opened (it used to stop the process on a precondition).
        for threads in ["2", "0"] {
            let r = try runS2Scope(["live", "-i", "lo", "--threads", threads, "--keylog", "/nonexistent/sslkeys.log"])
            #expect(r.status == 2 && r.stderr.contains("--threads 1"), "--threads \(threads): \(r.status) \(r.stderr)")
        }
    }

    @Test func failOnDecidesTheExitStatus() throws {
        let t = try Transcript("""
            C> $HDR to='b.example' from='a.example'>
            S> $HDR from='b.example' to='a.example'>
            """)  // no stream id: STREAM-HDR-8, high
        let path = temporaryFile(t.pcap)
        #expect(try runS2Scope(["analyze", path]).status == 1)
        #expect(try runS2Scope(["analyze", "--fail-on", "critical", path]).status == 0)
        #expect(try runS2Scope(["analyze", "--disable", "STREAM-HDR-8", "--fail-on", "high", path]).status == 0)
    }

    @Test func truncatedCaptureIsAnalysedUpToTheCut() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: fixture))
        let cut = temporaryFile(Array(bytes.prefix(bytes.count - 37)))
        let r = try runS2Scope(["analyze", "--format", "json", cut])
        #expect(r.status == 0 || r.status == 1)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let inputs = json["inputs"] as! [[String: Any]]
        #expect(inputs[0]["truncated"] as? Bool == true)
        #expect((json["dialbacks"] as! [Any]).count == 2, "what came before the cut is still analysed")
        #expect((json["anomalies"] as! [[String: Any]]).contains { $0["kind"] as? String == "truncated-capture" })
    }

    @Test func standardInputAndSeveralFilesFormOneReport() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixture))
        let r = try runS2Scope(["analyze", "--format", "json", "-", fixture], stdin: data)
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect((json["inputs"] as! [Any]).count == 2)
        #expect((json["dialbacks"] as! [Any]).count == 4)
        let conns = json["connections"] as! [[String: Any]]
        #expect(Set(conns.map { $0["input"] as! Int }) == [0, 1])
    }

    /// `analyze -r DIR`: the captures in a directory tree, recognised by content and read in the
    /// order of their first packet (a rotation's names need not sort that way), form one report
    /// with one server table — the same as the files given in time order.
    @Test func recursiveDirectoryIsReadInTimeOrder() throws {
        let lab = repoRoot.appendingPathComponent("fixtures/lab")
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("s2scope-recursive-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        try fm.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try fm.createDirectory(at: dir.appendingPathComponent(".hidden"), withIntermediateDirectories: true)
        // Name order (cap10 < cap2 < sub/cap9) is not time order (rotated-1, -2, -3).
        try fm.copyItem(at: lab.appendingPathComponent("rotated-1.pcap"), to: dir.appendingPathComponent("cap10"))
        try fm.copyItem(at: lab.appendingPathComponent("rotated-3.pcap"), to: dir.appendingPathComponent("cap2"))
        try fm.copyItem(at: lab.appendingPathComponent("rotated-2.pcap"), to: dir.appendingPathComponent("sub/cap9"))
        try fm.copyItem(at: lab.appendingPathComponent("bad-no-to.pcap"), to: dir.appendingPathComponent(".hidden/other.pcap"))
        try Data("not a capture\n".utf8).write(to: dir.appendingPathComponent("notes.txt"))

        let r = try runS2Scope(["analyze", "--format", "json", "--recursive", dir.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("1 file in the directories given is not a pcap/pcapng capture and was skipped"), "\(r.stderr)")
        #expect(r.stderr.contains("1 hidden or linked directory was not entered"), "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let paths = (json["inputs"] as! [[String: Any]]).map { ($0["path"] as! String).replacingOccurrences(of: dir.path + "/", with: "") }
        #expect(paths == ["cap10", "sub/cap9", "cap2"])

        let inOrder = try runS2Scope(["analyze", "--format", "json"] + ["rotated-1.pcap", "rotated-2.pcap", "rotated-3.pcap"].map { lab.appendingPathComponent($0).path })
        let expected = try JSONSerialization.jsonObject(with: Data(inOrder.stdout.utf8)) as! [String: Any]
        func digest(_ j: [String: Any]) -> String {
            let keep = ["dialbacks", "violations", "servers", "summary"].map { k -> String in
                let d = try! JSONSerialization.data(withJSONObject: j[k]!, options: [.sortedKeys])
                return k + String(decoding: d, as: UTF8.self)
            }
            return keep.joined(separator: "\n")
        }
        #expect(digest(json) == digest(expected), "a directory read in time order gives the report of the files in time order")
        #expect((json["servers"] as! [[String: Any]]).count == 2)
        #expect((json["summary"] as! [String: Any])["midstream_connections"] as? Int == 0, "one session across the files")

        let plain = try runS2Scope(["analyze", dir.path])
        #expect(plain.status == 2)
        #expect(plain.stderr.contains("is a directory; give --recursive"), "\(plain.stderr)")
        let empty = dir.appendingPathComponent("sub/empty")
        try fm.createDirectory(at: empty, withIntermediateDirectories: true)
        let none = try runS2Scope(["analyze", "-r", empty.path])
        #expect(none.status == 2 && none.stderr.contains("no pcap/pcapng capture"), "\(none.stderr)")
    }

    /// Many files: each is checked before any output and opened again when its turn comes (the
    /// same capture 70 times: equal first packets are ordered by path).
    @Test func manyFilesFromADirectory() throws {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("s2scope-many-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for i in 0..<70 {
            try FileManager.default.copyItem(atPath: fixture, toPath: dir.appendingPathComponent(String(format: "p%02d.pcap", i)).path)
        }
        let r = try runS2Scope(["analyze", "--format", "json", "-r", dir.path])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let inputs = (json["inputs"] as! [[String: Any]]).map { ($0["path"] as! String).components(separatedBy: "/").last! }
        #expect(inputs == (0..<70).map { String(format: "p%02d.pcap", $0) })
        #expect((json["dialbacks"] as! [Any]).count == 140)
        let servers = json["servers"] as! [[String: Any]]
        #expect(servers.count == 2 && servers.allSatisfy { ($0["dialbacks"] as! [String: Int])["valid"] == 140 })
    }

    @Test func jsonLinesAreOneObjectPerLine() throws {
        let r = try runS2Scope(["analyze", "--format", "jsonl", fixture])
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count > 3)
        var servers = 0
        for l in lines {
            let o = try JSONSerialization.jsonObject(with: Data(l.utf8)) as! [String: Any]
            #expect(["connection", "dialback", "violation", "anomaly", "not_judged", "server", "stats"].contains(o["event"] as! String))
            if o["event"] as? String == "server" {
                servers += 1
                #expect(o["id"] as? String == "S\(servers)" && (o["findings"] as? [Any]) != nil)
            }
        }
        #expect(servers == 2, "one server event per row of the server table (a.lab, b.lab)")
        #expect(lines.last?.contains("\"stats\"") == true)
    }

    @Test func rulesCommandListsTheCatalog() throws {
        let r = try runS2Scope(["rules"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("DB-CORR-6") && r.stdout.contains("NO-6"))
        let one = try runS2Scope(["rules", "db-corr-6"])
        #expect(one.status == 0 && one.stdout.contains("XEP-0220") && one.stdout.contains("fires on"))
        #expect(try runS2Scope(["rules", "XYZ-1"]).status == 2)
    }
}
