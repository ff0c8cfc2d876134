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
