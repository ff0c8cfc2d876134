import S2TestSupport
import Foundation
import Testing

/// Golden tests on captures of real Prosody and ejabberd servers made by scripts/lab: every
/// capture's verdicts are checked against its hand-written ground truth (fixtures/lab/*.truth.json)
/// by scripts/lab/check-truth.py — dialback exchanges and outcomes, the violations the misbehaving
/// party must get, and nothing at or above the forbidden severity in clean federation. Captures whose
/// truth today's analyzer does not meet are listed in fixtures/lab/analyzer-pending.json: check-truth
/// reports them as PENDING (and fails once they pass, so the list cannot outlive the fix).
struct LabGoldenTests {
    static let captures: [String] = {
        let dir = repoRoot.appendingPathComponent("fixtures/lab")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".truth.json") }.map { String($0.dropLast(".truth.json".count)) }.sorted()
    }()

    @Test func labCapturesCoverTheScenarios() {
        for s in ["prosody-prosody", "prosody-ejabberd", "wrong-secret", "verify-unhosted", "starttls",
                  "prosody-prosody-sll", "prosody-prosody-sll2",
                  // issue #15: field-capture shapes; issue #18: several servers in one capture
                  "midstream-prosody", "midstream-ejabberd", "rotated", "rotated-1", "rotated-2", "rotated-3",
                  "mixed-case", "bidi", "not-xmpp-probes", "multi-server"] {
            #expect(Self.captures.contains(s), "missing lab capture \(s)")
        }
        #expect(Self.captures.filter { $0.hasPrefix("bad-") }.count >= 10)
    }

    @Test(arguments: captures)
    func verdictsMatchGroundTruth(_ name: String) throws {
        let dir = repoRoot.appendingPathComponent("fixtures/lab")
        let truthURL = dir.appendingPathComponent("\(name).truth.json")
        let truth = try JSONSerialization.jsonObject(with: Data(contentsOf: truthURL)) as! [String: Any]
        // a rotated capture set (tcpdump -G) is one truth for all its files, analysed together in order
        let files = (truth["captures"] as? [String]) ?? [truth["capture"] as? String ?? "\(name).pcap"]
        let captures = files.map { dir.appendingPathComponent($0).path }
        let capture = captures[0]
        let reportPath = NSTemporaryDirectory() + "s2scope-lab-\(name)-\(UUID().uuidString).json"
        let r = try runS2Scope(["analyze", "--format", "json", "-o", reportPath] + captures)
        #expect(r.status == 0 || r.status == 1, "\(name): \(r.stderr)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", repoRoot.appendingPathComponent("scripts/lab/check-truth.py").path, capture, truthURL.path, reportPath]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(name):\n\(text)")
    }

    /// The same traffic recorded as pcap, pcapng and on `any` (SLL, SLL2) gives the same verdicts.
    @Test func linkTypesAndFormatsGiveTheSameVerdicts() throws {
        let dir = repoRoot.appendingPathComponent("fixtures/lab")
        func summary(_ file: String) throws -> [String] {
            let path = dir.appendingPathComponent(file).path
            guard FileManager.default.fileExists(atPath: path) else { return ["missing \(file)"] }
            let r = try runS2Scope(["analyze", "--format", "json", path])
            let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            let d = (j["dialbacks"] as! [[String: Any]]).map { "\($0["originating"]!)>\($0["receiving"]!):\($0["outcome"]!):\($0["verify_connection"] is String)" }
            let v = (j["violations"] as! [[String: Any]]).map { "\($0["rule"]!)/\($0["severity"]!)" }
            return d.sorted() + v.sorted()
        }
        let pcap = try summary("prosody-prosody.pcap")
        #expect(try summary("prosody-prosody.pcapng") == pcap)
        // SLL/SLL2 variants are recordings of the same run on `any`.
        let sll = try summary("prosody-prosody-sll.pcap")
        #expect(try summary("prosody-prosody-sll2.pcap") == sll)
        #expect(sll.filter { $0.contains(">") } == pcap.filter { $0.contains(">") })
    }
}
