import Foundation
import S2Engine
import S2Model
import S2Report
import S2Rules
import S2Synth
import S2TestSupport
import Testing

/// An offline run lists at most `maxListedViolations` findings one by one (`--max-findings`):
/// each holds its message and evidence in memory, and hostile traffic can bring millions. The
/// later ones are counted as the per-connection bound counts them, so that totals, the exit
/// status and the server table still see every one.
struct ListedFindingsTests {
    static func analyse(_ pcap: String, max: Int?, threads: Int = 1) throws -> AnalysisReport {
        var c = EngineConfiguration()
        c.rules.maxListedViolations = max
        c.threads = threads
        let engine = Engine(configuration: c)
        engine.read(try Engine.open(path: pcap, inputIndex: 0, filter: nil))
        return engine.finish()
    }

    static func total(_ r: AnalysisReport) -> Int { r.violations.count + r.unlistedViolations.reduce(0) { $0 + $1.count } }

    /// Every server's findings as (rule, severity, count): what the table charges.
    static func serverFindings(_ r: AnalysisReport) throws -> [String] {
        let json = try #require(try JSONSerialization.jsonObject(with: Data(JSONReport.document(r).utf8)) as? [String: Any])
        let servers = json["servers"] as? [[String: Any]] ?? []
        return servers.flatMap { s in
            (s["findings"] as? [[String: Any]] ?? []).map { f in
                "\(s["name"] ?? "?") \(f["rule"] ?? "?") \(f["severity"] ?? "?") \(f["count"] ?? "?")"
            }
        }.sorted()
    }

    @Test func findingsPastTheBoundAreCountedNotListed() throws {
        let pcap = temporaryFile(HostileState.capture(.fatConnections, n: 12))
        defer { try? FileManager.default.removeItem(atPath: pcap) }
        let all = try Self.analyse(pcap, max: nil)
        #expect(all.violations.count > 40, "\(all.violations.count) findings")
        #expect(!all.anomalies.contains { $0.message.contains("--max-findings") })

        let bounded = try Self.analyse(pcap, max: 20)
        #expect(bounded.violations.count == 20)
        #expect(Self.total(bounded) == Self.total(all))
        let key = { (v: Violation) in "\(v.rule) \(v.connection) \(v.frame.number) \(v.message)" }
        #expect(Set(bounded.violations.map(key)).isSubset(of: Set(all.violations.map(key))))
        let suppressed = bounded.statistics.suppressedViolations.values.reduce(0, +)
        let suppressedBefore = all.statistics.suppressedViolations.values.reduce(0, +)
        #expect(suppressed - suppressedBefore == all.violations.count - 20)
        for s in Severity.allCases { #expect(bounded.count(atLeast: s) == all.count(atLeast: s), "\(s)") }
        let notices = bounded.anomalies.filter { $0.kind == .limitReached && $0.message.contains("--max-findings") }
        #expect(notices.count == 1)
        #expect(try Self.serverFindings(bounded) == Self.serverFindings(all))

        // The stages judge on one thread in capture order: the same findings are listed with
        // parsing threads.
        let threaded = try Self.analyse(pcap, max: 20, threads: 2)
        #expect(JSONReport.document(threaded) == JSONReport.document(bounded))
    }
}
