import Foundation
import S2Engine
import S2Model
import S2Report
import S2Rules
import S2Synth
import Testing

/// Every rule's own examples: it must fire on each firing transcript (pointing at a real frame)
/// and stay quiet on each quiet one.
struct RuleExampleTests {
    static let rules = RuleCatalog.all.filter(\.isImplemented)

    @Test(arguments: rules.map(\.id))
    func firesOnItsExamples(_ id: String) throws {
        let d = try #require(RuleCatalog.description(of: id))
        for (i, ex) in d.firing.enumerated() {
            let r = try Engine.analyze(transcript: ex)
            let hits = r.violations.filter { $0.rule == id }
            #expect(!hits.isEmpty, "\(id) did not fire on firing example \(i + 1); got \(r.violations.map(\.rule))")
            for h in hits {
                #expect(h.frame.number >= 1 && h.frame.number <= r.statistics.packets, "\(id) points at frame \(h.frame.number)")
                #expect(!h.message.isEmpty && !h.evidence.isEmpty)
            }
            // The ↓ marks the step whose first frame the finding must point at.
            let marked = try Transcript(ex).markedFrames
            #expect(marked.count == 1, "\(id) firing example \(i + 1) must mark exactly one step with ↓ (marks \(marked.count))")
            if let m = marked.first {
                #expect(hits.contains { $0.frame.number == m }, "\(id) firing example \(i + 1): expected a finding at frame \(m), got frames \(hits.map(\.frame.number))")
            }
        }
    }

    @Test(arguments: rules.map(\.id))
    func quietOnItsExamples(_ id: String) throws {
        let d = try #require(RuleCatalog.description(of: id))
        #expect(!d.quiet.isEmpty, "\(id) has no quiet example")
        for (i, ex) in d.quiet.enumerated() {
            let r = try Engine.analyze(transcript: ex)
            let hits = r.violations.filter { $0.rule == id }
            #expect(hits.isEmpty, "\(id) fired on quiet example \(i + 1): \(hits.map(\.message))")
        }
    }

    /// A clean exchange keeps every rule quiet; each rule also needs a near miss of its own
    /// (legitimate traffic that comes close to what it flags).
    @Test func everyImplementedRuleHasANearMissQuietExample() {
        let missing = Self.rules.filter { d in !d.quiet.contains { $0 != Example.clean } }.map(\.id)
        #expect(missing.isEmpty, "rules whose only quiet example is the clean exchange: \(missing)")
    }

    @Test func everyImplementedRuleHasAFiringExample() {
        let missing = Self.rules.filter { $0.firing.isEmpty }.map(\.id)
        // STREAM-HDR-6 needs hosted-domain knowledge and is exercised in HostedDomainTests.
        #expect(missing == ["STREAM-HDR-6"], "rules without a firing example: \(missing)")
    }

    @Test func cleanExchangeHasNoFindingAtOrAboveLow() throws {
        let r = try Engine.analyze(transcript: Example.clean)
        #expect(r.exchanges.count == 1)
        #expect(r.exchanges.first?.outcomeName == "valid")
        #expect(r.exchanges.first?.verifyConnection == ConnectionID(2))
        #expect(r.exchanges.first?.verifyType == "valid")
        let serious = r.violations.filter { $0.severity >= .low }
        #expect(serious.map(\.rule) == ["STREAM-FEAT-2", "STREAM-FEAT-2"], "\(serious.map { "\($0.rule): \($0.message)" })")
    }

    static func ruleIDs(in text: String) -> Set<String> {
        var ids = Set<String>()
        for line in text.split(separator: "\n") where line.hasPrefix("| ") {
            let first = line.dropFirst(2).split(separator: "|").first?.trimmingCharacters(in: .whitespaces) ?? ""
            if first.range(of: "^[A-Z]+(-[A-Z]+)*-[0-9]+$", options: .regularExpression) != nil,
               !first.hasPrefix("XEP-"), !first.hasPrefix("RFC") { ids.insert(first) }
        }
        return ids
    }

    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Rules beyond the shared catalog have their rows in the project's docs/RULES-EXTRA.md.
    @Test func extraRulesAreDocumented() throws {
        let extra = Self.ruleIDs(in: try String(contentsOf: Self.repoRoot.appendingPathComponent("docs/RULES-EXTRA.md"), encoding: .utf8))
        let ours = Set(RuleCatalog.all.map(\.id))
        #expect(extra == Set((1...8).map { "SASL-\($0)" }))
        #expect(extra.subtracting(ours).isEmpty, "in docs/RULES-EXTRA.md but not in the catalog: \(extra.subtracting(ours).sorted())")
        #expect(ours.filter { $0.hasPrefix("SASL-") } == extra)
    }

    @Test func catalogMatchesRulesMd() throws {
        let here = URL(fileURLWithPath: #filePath)
        let spec = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("shared/spec/RULES.md")
        guard let text = try? String(contentsOf: spec, encoding: .utf8) else { return }  // spec not beside the clone
        let ids = Self.ruleIDs(in: text)
        let extra = Self.ruleIDs(in: try String(contentsOf: Self.repoRoot.appendingPathComponent("docs/RULES-EXTRA.md"), encoding: .utf8))
        let ours = Set(RuleCatalog.all.map(\.id))
        #expect(ids.count == 83)
        #expect(extra.isDisjoint(with: ids), "docs/RULES-EXTRA.md repeats RULES.md IDs: \(extra.intersection(ids).sorted())")
        #expect(ids.subtracting(ours).isEmpty, "in RULES.md but not in the catalog: \(ids.subtracting(ours).sorted())")
        #expect(ours.subtracting(ids.union(extra)).isEmpty,
                "in the catalog but in neither RULES.md nor docs/RULES-EXTRA.md: \(ours.subtracting(ids.union(extra)).sorted())")
    }
}

struct HostedDomainTests {
    @Test func streamToUnhostedDomainMustBeRefused() throws {
        let t = "#!host b.example=10.0.0.2\nC> $HDR to='nope.example' from='a.example'>\nS> $HDR from='b.example' id='x1'>\nS> <stream:features/>"
        let r = try Engine.analyze(transcript: t)
        #expect(r.violations.contains { $0.rule == "STREAM-HDR-6" })
        let ok = "#!host b.example=10.0.0.2\nC> $HDR to='nope.example' from='a.example'>\nS> $HDR from='b.example' id='x1'>\nS> <stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        #expect(!(try Engine.analyze(transcript: ok)).violations.contains { $0.rule == "STREAM-HDR-6" })
    }
}
