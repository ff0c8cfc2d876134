import S2TestSupport
import Foundation
import Testing

/// Golden text and JSON reports of `fixtures/lab/prosody-prosody.pcap`, in `fixtures/golden/`.
/// The capture is fixed, so only the tool version is normalised (to `<version>`).
/// Regenerate after an intended change: `S2SCOPE_UPDATE_GOLDEN=1 swift test --filter S2ReportTests.ReportGoldenTests`,
/// then review the diff (see fixtures/golden/README.md).
struct ReportGoldenTests {
    static let golden = repoRoot.appendingPathComponent("fixtures/golden")
    static let input = "fixtures/lab/prosody-prosody.pcap"

    static func normalise(_ s: String) -> String {
        s.replacingOccurrences(of: "S2Scope \(versionOfTool) —", with: "S2Scope <version> —")
            .replacingOccurrences(of: "\"version\": \"\(versionOfTool)\"", with: "\"version\": \"<version>\"")
    }

    /// What `s2scope --version` says.
    static let versionOfTool: String = {
        (try? runS2Scope(["--version"], in: repoRoot))?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
    }()

    func check(_ arguments: [String], golden name: String) throws {
        let r = try runS2Scope(arguments + [Self.input], in: repoRoot)  // relative path: stable in the report
        #expect(r.status == 0, "\(r.stderr)")
        let actual = Self.normalise(r.stdout)
        let file = Self.golden.appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["S2SCOPE_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: Self.golden, withIntermediateDirectories: true)
            try actual.write(to: file, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: file, encoding: .utf8)
        if actual != expected {
            let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
            let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
            let i = (0..<min(a.count, e.count)).first { a[$0] != e[$0] } ?? min(a.count, e.count)
            Issue.record("""
                \(name) differs from the golden file at line \(i + 1):
                  golden: \(i < e.count ? String(e[i]) : "<end>")
                  actual: \(i < a.count ? String(a[i]) : "<end>")
                If the change is intended: S2SCOPE_UPDATE_GOLDEN=1 swift test --filter S2ReportTests.ReportGoldenTests
                """)
        }
    }

    @Test func textReport() throws {
        #expect(Self.versionOfTool != "?" && !Self.versionOfTool.isEmpty)
        try check(["analyze", "--no-color"], golden: "prosody-prosody.txt")
    }

    @Test func verboseTextReport() throws {
        try check(["analyze", "--no-color", "--verbose"], golden: "prosody-prosody-verbose.txt")
    }

    @Test func jsonReport() throws {
        try check(["analyze", "--format", "json"], golden: "prosody-prosody.json")
    }

    @Test func jsonLinesReport() throws {
        try check(["analyze", "--format", "jsonl"], golden: "prosody-prosody.jsonl")
    }
}
