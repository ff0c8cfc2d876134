import Foundation
import S2Engine
import S2Model
import S2Report
import S2Rules
import S2Synth
import Testing

/// Capture clocks step back: merged files, a clock corrected during the capture, a forged pcap.
/// The pipeline fuzzer found DB-CORR-9 building the window `request...reply` from two such
/// times and trapping. Every rule's examples, with the clock stepping back 30 s before each line,
/// must analyse to a whole, well-formed report.
struct ClockStepTests {
    static let rules = RuleCatalog.all.filter(\.isImplemented)

    /// `transcript` with the capture clock moved back 30 s before line `k`.
    static func steppedBack(_ transcript: String, before k: Int) -> String {
        var lines = transcript.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines.insert("+-30", at: k)
        return lines.joined(separator: "\n")
    }

    @Test(arguments: rules.map(\.id))
    func aClockSteppingBackNeverTraps(_ id: String) throws {
        let d = try #require(RuleCatalog.description(of: id))
        for ex in d.firing + d.quiet {
            let count = ex.split(separator: "\n", omittingEmptySubsequences: false).count
            for k in 1..<max(2, count) {
                let t = Self.steppedBack(ex, before: k)
                let r = try Engine.analyze(transcript: t)
                #expect(r.statistics.packets == (try Transcript(t).frames.count))
                let json = JSONReport.document(r)
                #expect((try? JSONSerialization.jsonObject(with: Data(json.utf8))) != nil, "\(id): report not well-formed JSON")
            }
        }
    }

    /// The case the fuzzer found: the receiving server's "valid" carries an earlier time than the
    /// request it answers. DB-CORR-9 still judges it (the window is the same, whichever end came first).
    @Test func validAnswerTimedBeforeItsRequest() throws {
        let d = try #require(RuleCatalog.description(of: "DB-CORR-9"))
        for ex in d.firing {
            let last = ex.split(separator: "\n").count - 1
            let r = try Engine.analyze(transcript: Self.steppedBack(ex, before: last))
            #expect(r.violations.contains { $0.rule == "DB-CORR-9" }, "\(r.violations.map(\.rule))")
        }
    }
}
