import S2TestSupport
import Foundation
import Testing

/// Golden JSON reports (pcap → JSON) of every capture the project owns with a ground truth:
/// `fixtures/lab/*` (real Prosody and ejabberd servers, scripts/lab) and `fixtures/tls/*` (real servers
/// behind TLS, decrypted with their key logs), in `fixtures/golden/lab/` and `fixtures/golden/tls/`.
/// The truth files judge the verdicts (LabGoldenTests); these catch every other change of what the
/// report says about real traffic — connections, timings, TLS facts, servers, counters.
/// Regenerate after an intended change: `S2SCOPE_UPDATE_GOLDEN=1 swift test --filter LabReportGoldenTests`,
/// then review `git diff fixtures/golden/`.
struct LabReportGoldenTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let set: String      // lab or tls
        let name: String
        let arguments: [String]  // relative to the repository root: stable in the report
        var testDescription: String { "\(set)/\(name)" }
    }

    static let cases: [Case] = {
        var out: [Case] = []
        for set in ["lab", "tls"] {
            let dir = repoRoot.appendingPathComponent("fixtures/\(set)")
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
            for truthName in names where truthName.hasSuffix(".truth.json") {
                let name = String(truthName.dropLast(".truth.json".count))
                guard let data = try? Data(contentsOf: dir.appendingPathComponent(truthName)),
                      let truth = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { continue }
                let files = (truth["captures"] as? [String]) ?? [truth["capture"] as? String ?? "\(name).pcap"]
                // a capture with key logs beside it (fixtures/tls) is analysed with all of them
                let keylogs = names.filter { $0.hasPrefix(name + ".") && $0.hasSuffix(".keylog") || $0 == name + ".keylog" }
                out.append(Case(set: set, name: name,
                                arguments: keylogs.flatMap { ["--keylog", "fixtures/\(set)/\($0)"] } + files.map { "fixtures/\(set)/\($0)" }))
            }
        }
        return out
    }()

    @Test func everyCaptureWithATruthHasAGolden() {
        #expect(Self.cases.filter { $0.set == "lab" }.count >= 40)
        #expect(Self.cases.filter { $0.set == "tls" }.count >= 6)
    }

    @Test(arguments: cases)
    func jsonReportMatchesTheGolden(_ c: Case) throws {
        let r = try runS2Scope(["analyze", "--format", "json"] + c.arguments, in: repoRoot)
        #expect(r.status == 0 || r.status == 1, "\(c.testDescription): \(r.stderr)")
        let actual = ReportGoldenTests.normalise(r.stdout)
        let dir = repoRoot.appendingPathComponent("fixtures/golden/\(c.set)")
        let file = dir.appendingPathComponent("\(c.name).json")
        if ProcessInfo.processInfo.environment["S2SCOPE_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try actual.write(to: file, atomically: true, encoding: .utf8)
            return
        }
        guard let expected = try? String(contentsOf: file, encoding: .utf8) else {
            Issue.record("\(c.testDescription): no golden file \(file.path) (S2SCOPE_UPDATE_GOLDEN=1 writes it)")
            return
        }
        if actual != expected {
            let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
            let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
            let i = (0..<min(a.count, e.count)).first { a[$0] != e[$0] } ?? min(a.count, e.count)
            Issue.record("""
                \(c.testDescription) differs from fixtures/golden/\(c.set)/\(c.name).json at line \(i + 1):
                  golden: \(i < e.count ? String(e[i]) : "<end>")
                  actual: \(i < a.count ? String(a[i]) : "<end>")
                If the change is intended: S2SCOPE_UPDATE_GOLDEN=1 swift test --filter LabReportGoldenTests
                """)
        }
    }
}
