import S2TestSupport
import Foundation
import S2Engine
import S2Report
import S2Rules
import Testing

/// `schema/s2scope-1.schema.json` (JSON Schema draft 2020-12) describes what
/// `analyze --format json` writes: every lab capture, the hostile capture, and the firing
/// example of every rule validate; broken documents do not.
struct SchemaTests {
    static let schema = repoRoot.appendingPathComponent("schema/s2scope-1.schema.json").path

    /// Validates every file of `dir` with python3's jsonschema; returns "file: error" lines.
    func validate(_ dir: URL) throws -> [String] {
        let script = """
            import json, sys, os, jsonschema
            schema = json.load(open(sys.argv[1]))
            jsonschema.Draft202012Validator.check_schema(schema)
            v = jsonschema.Draft202012Validator(schema)
            n = 0
            for name in sorted(os.listdir(sys.argv[2])):
                doc = json.load(open(os.path.join(sys.argv[2], name)))
                n += 1
                for e in v.iter_errors(doc):
                    print(name + ': ' + e.message[:300] + ' at ' + e.json_path)
            print('checked', n, file=sys.stderr)
            """
        let r = try Python.run(script, [Self.schema, dir.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("checked "), "\(r.stderr)")
        return r.stdout.split(separator: "\n").map(String.init)
    }

    @Test func realOutputsValidate() throws {
        let dir = try scratchDirectory("schema")
        defer { try? FileManager.default.removeItem(at: dir) }
        let lab = repoRoot.appendingPathComponent("fixtures/lab")
        let captures = try FileManager.default.contentsOfDirectory(atPath: lab.path).filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }.sorted()
        #expect(captures.count >= 10)
        for name in captures {
            let r = try runS2Scope(["analyze", "--format", "json", lab.appendingPathComponent(name).path])
            #expect(r.status == 0 || r.status == 1, "\(name): \(r.stderr)")
            try r.stdout.write(to: dir.appendingPathComponent("lab-\(name).json"), atomically: true, encoding: .utf8)
        }
        // TLS captures, with and without their key logs: tls_info with certificates, empty
        // Certificate messages, encrypted ones.
        let tls = repoRoot.appendingPathComponent("fixtures/tls")
        let tlsCaptures = try FileManager.default.contentsOfDirectory(atPath: tls.path).filter { $0.hasSuffix(".pcap") }.sorted()
        #expect(tlsCaptures.count >= 6)
        for name in tlsCaptures {
            let stem = String(name.dropLast(5))
            let keylogs = try FileManager.default.contentsOfDirectory(atPath: tls.path).filter { $0.hasPrefix(stem + ".") && $0.hasSuffix(".keylog") }.sorted()
            for (i, withKeys) in [false, true].enumerated() {
                let keys = withKeys ? keylogs.prefix(1).flatMap { ["--keylog", tls.appendingPathComponent($0).path] } : []
                let r = try runS2Scope(["analyze", "--format", "json"] + keys + [tls.appendingPathComponent(name).path])
                #expect(r.status == 0 || r.status == 1, "\(name): \(r.stderr)")
                #expect(r.stdout.contains("\"tls_info\""), "\(name)")
                try r.stdout.write(to: dir.appendingPathComponent("tls-\(stem)-\(i).json"), atomically: true, encoding: .utf8)
            }
        }
        // Two inputs in one report.
        let two = try runS2Scope(["analyze", "--format", "json", lab.appendingPathComponent("prosody-prosody.pcap").path,
                                  lab.appendingPathComponent("bad-db-ns.pcap").path])
        try two.stdout.write(to: dir.appendingPathComponent("two-inputs.json"), atomically: true, encoding: .utf8)
        // The hostile capture (many violations, anomalies, odd domains) through the CLI.
        let hostile = dir.appendingPathComponent("hostile.pcap")
        FileManager.default.createFile(atPath: hostile.path, contents: Data(try HostileCapture.pcap))
        let h = try runS2Scope(["analyze", "--format", "json", hostile.path])
        #expect(h.status == 1)
        try h.stdout.write(to: dir.appendingPathComponent("hostile.json"), atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(at: hostile)
        // Every rule's firing examples: all rules, actors, severities and outcomes the engine makes.
        var n = 0
        for d in RuleCatalog.all where d.isImplemented {
            for (i, ex) in d.firing.enumerated() {
                let report = try Engine.analyze(transcript: ex)
                try JSONReport.document(report).write(to: dir.appendingPathComponent("rule-\(d.id)-\(i).json"), atomically: true, encoding: .utf8)
                n += 1
            }
        }
        #expect(n > 50)
        let errors = try validate(dir)
        #expect(errors.isEmpty, "\(errors.count) schema errors:\n\(errors.prefix(30).joined(separator: "\n"))")
    }

    @Test func brokenDocumentsAreRejected() throws {
        let dir = try scratchDirectory("schema-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try runS2Scope(["analyze", "--format", "json", repoRoot.appendingPathComponent("fixtures/lab/prosody-prosody.pcap").path])
        let good = r.stdout
        let broken: [String: (String) -> String] = [
            "severity": { $0.replacingOccurrences(of: "\"severity\": \"info\"", with: "\"severity\": \"harmless\"") },
            "direction": { $0.replacingOccurrences(of: "\"direction\": \"client-to-server\"", with: "\"direction\": \"up\"") },
            "actor": { $0.replacingOccurrences(of: "\"actor\": \"initiator\"", with: "\"actor\": \"someone\"") },
            "outcome": { $0.replacingOccurrences(of: "\"outcome\": \"valid\"", with: "\"outcome\": \"fine\"") },
            "close": { $0.replacingOccurrences(of: "\"close\": \"rst\"", with: "\"close\": \"ended\"") },
            "schema": { $0.replacingOccurrences(of: "\"s2scope/1\"", with: "\"s2scope/2\"") },
            "time": { $0.replacingOccurrences(of: "\"start\": \"2", with: "\"start\": \"yesterday 2") },
            "missing": { $0.replacingOccurrences(of: "\"evidence\":", with: "\"proof\":") },
            "server-id": { $0.replacingOccurrences(of: "\"id\": \"S1\"", with: "\"id\": \"server-1\"") },
            "server-verify": { $0.replacingOccurrences(of: "\"verify_connection\": \"reverse\"", with: "\"verify_connection\": \"sideways\"") },
            "server-role": { $0.replacingOccurrences(of: "\"roles\": [\n        \"originating\"", with: "\"roles\": [\n        \"bystander\"") },
            "server-finding": { $0.replacingOccurrences(of: "\"count\": 1,", with: "\"count\": 0,") },
        ]
        for (name, f) in broken {
            let text = f(good)
            #expect(text != good, "\(name) did not change the document")
            try text.write(to: dir.appendingPathComponent("\(name).json"), atomically: true, encoding: .utf8)
        }
        let errors = try validate(dir)
        for name in broken.keys {
            #expect(errors.contains { $0.hasPrefix("\(name).json:") }, "the schema accepts a document with a bad \(name)")
        }
    }
}
