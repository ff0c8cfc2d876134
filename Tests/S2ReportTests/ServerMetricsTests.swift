import Foundation
import S2Model
import S2Report
import Testing

/// `s2scope_violations_total{server,rule,severity}`: the server label stays within its bound
/// however many peers there are, the heaviest servers get the labels, and every series is a
/// monotone counter.
struct ServerMetricsTests {
    /// Label values of the exposition's samples, per label name.
    static func labels(_ text: String) -> [[String: String]] {
        text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
            let inner = line.split(separator: "{", maxSplits: 1)[1].split(separator: "}", maxSplits: 1)[0]
            var out: [String: String] = [:]
            for pair in inner.components(separatedBy: "\",") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                out[String(kv[0])] = String(kv[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
            return out
        }
    }

    @Test func tenThousandPeerDomainsStayWithinTheBound() {
        let n = 50
        let c = ServerViolationCounters(maxServers: n)
        let rules: [(String, Severity)] = [("STANZA-ADDR-4", .critical), ("DB-CORR-9", .medium), ("DB-CORR-9", .low), ("STREAM-HDR-8", .info)]
        // 10,000 peer domains: a few heavy ones (Zipf-like traffic), every one of them breaking
        // rules, in an order that mixes heavy and light (7919 is prime: a permutation), so that the
        // free labels first go to whoever comes first and ranking must hand them to the heaviest.
        var violations = 0
        var now = 0.0
        for round in 0..<3 {
            for k in 0..<10_000 {
                let i = (k * 7919 + 4999) % 10_000
                let domain = "peer\(i).example"
                c.addTraffic(domain, 1_000_000 / (i + 1) + 100)
                let (rule, sev) = rules[(i + round) % rules.count]
                c.count(server: domain, rule: rule, severity: sev)
                violations += 1
                if k % 1000 == 999 {
                    now += 15
                    c.rerank(now: now)
                }
            }
        }
        c.rerank(now: now + 15)
        let text = c.exposition()
        let samples = Self.labels(text)
        let servers = Set(samples.map { $0["server"]! })
        #expect(servers.count <= n + 1, "\(servers.count) server label values")
        #expect(servers.contains(ServerViolationCounters.other))
        #expect(samples.count <= (n + 1) * rules.count, "\(samples.count) series")
        #expect(c.labelled.count == n)
        #expect(c.trackedServers <= c.sketchCapacity && c.sketchCapacity == 4 * n, "memory is bounded by the sketch, not by the peers")
        // The heaviest peers have their own label (their share of traffic is far above 1/capacity).
        for i in 0..<20 { #expect(c.labelled.contains("peer\(i).example"), "peer\(i) is among the heaviest") }
        #expect(c.labelled.filter { Int($0.dropFirst(4).prefix { $0.isNumber })! < 100 }.count == n,
                "every label belongs to one of the 100 heaviest: \(c.labelled.sorted())")
        // Every violation is in some series, except those of servers that lost their label.
        let sum = c.samples.reduce(0) { $0 + $1.value }
        #expect(sum <= violations && c.total == violations)
        #expect(sum > violations / 2, "other and the labelled servers hold \(sum) of \(violations)")
        // Text format: one sample per line, labels in order, values integers.
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.hasPrefix("s2scope_violations_total{server=\""))
            #expect(Int(line.split(separator: " ").last!) != nil)
        }
        #expect(text.hasPrefix("# HELP s2scope_violations_total ") && text.contains("# TYPE s2scope_violations_total counter\n"))
    }

    @Test func labelsGoToTheHeaviestAndSeriesNeverDecrease() {
        let c = ServerViolationCounters(maxServers: 2)
        var seen: [ServerViolationCounters.Series: Int] = [:]
        func checkMonotone() {
            for (s, v) in c.samples {
                if let before = seen[s] { #expect(v >= before, "\(s) went from \(before) to \(v)") }
                seen[s] = v
            }
            // A series that disappeared may come back only from zero (a new promotion).
            for s in seen.keys where c.counters[s] == nil { seen[s] = nil }
        }
        c.addTraffic("a.example", 1000)
        c.addTraffic("b.example", 800)
        c.addTraffic("c.example", 100)
        c.rerank(now: 0)
        #expect(c.labelled == ["a.example", "b.example"])
        c.count(server: "c.example", rule: "R-1", severity: .low)
        c.count(server: "b.example", rule: "R-1", severity: .low)
        checkMonotone()
        #expect(c.counters[.init(server: "other", rule: "R-1", severity: .low)] == 1)
        // c grows, but not to 1.5 × b: no change (no flapping between near equals).
        c.addTraffic("c.example", 1000)  // 1100 < 1.5 × 800
        c.rerank(now: 1)
        #expect(c.labelled == ["a.example", "b.example"])
        // Now it does: b loses its label and its series; c's series starts at its promotion.
        c.addTraffic("c.example", 200)  // 1300 ≥ 1200
        c.rerank(now: 2)
        #expect(c.labelled == ["a.example", "c.example"])
        #expect(c.counters[.init(server: "b.example", rule: "R-1", severity: .low)] == nil)
        #expect(c.counters[.init(server: "c.example", rule: "R-1", severity: .low)] == nil)
        checkMonotone()
        c.count(server: "c.example", rule: "R-1", severity: .low)
        c.count(server: "b.example", rule: "R-1", severity: .low)
        checkMonotone()
        #expect(c.counters[.init(server: "c.example", rule: "R-1", severity: .low)] == 1)
        #expect(c.counters[.init(server: "other", rule: "R-1", severity: .low)] == 2, "b's later violation counts under other")
        #expect(c.total == 4)
    }

    @Test func trafficDecaysSoTheRankingFollowsTheCurrentOne() {
        let c = ServerViolationCounters(maxServers: 1)
        c.addTraffic("old.example", 10_000)
        c.rerank(now: 0)
        #expect(c.labelled == ["old.example"])
        // Ten minutes later (two half-lives) old.example counts 2,500.
        c.rerank(now: 600)
        #expect(abs(c.traffic(of: "old.example") - 2500) < 0.001)
        #expect(c.labelled == ["old.example"])
        // new.example sends 3,000: not 1.5 × 2,500; then 4,000 in all: it takes the label.
        c.addTraffic("new.example", 3000)
        c.rerank(now: 600)
        #expect(c.labelled == ["old.example"])
        c.addTraffic("new.example", 1000)
        c.rerank(now: 600)
        #expect(c.labelled == ["new.example"])
        // Without traffic for an hour, everyone's count is tiny, and the ranking keeps its order.
        c.rerank(now: 4200)
        #expect(c.traffic(of: "new.example") < 1 && c.traffic(of: "new.example") > c.traffic(of: "old.example"))
    }

    @Test func freeLabelsAreGivenAtOnceAndNoLabelMeansOther() {
        let c = ServerViolationCounters(maxServers: 1)
        c.count(server: "quiet.example", rule: "R-1", severity: .info)  // no traffic known: other
        c.addTraffic("a.example", 10)
        c.count(server: "a.example", rule: "R-1", severity: .info)      // a free label, taken at once
        c.addTraffic("b.example", 10)
        c.count(server: "b.example", rule: "R-1", severity: .info)      // none left
        #expect(c.samples.map { "\($0.series.server) \($0.value)" } == ["a.example 1", "other 2"])
        let none = ServerViolationCounters(maxServers: 0)
        none.addTraffic("a.example", 10)
        none.count(server: "a.example", rule: "R-1", severity: .high)
        none.rerank(now: 0)
        #expect(none.samples.map(\.series.server) == ["other"])
    }

    @Test func hostileNamesAreEscaped() {
        let c = ServerViolationCounters(maxServers: 4)
        let evil = "a\"b\\c\nd\u{1b}[31m.example"
        c.addTraffic(evil, 10)
        c.count(server: evil, rule: "R-1", severity: .high)
        let text = c.exposition()
        let sample = text.split(separator: "\n").filter { !$0.hasPrefix("#") }
        #expect(sample.count == 1, "a line feed in a name must not start a new sample")
        #expect(sample.first?.contains("server=\"a\\\"b\\\\c\\nd\\\\x1b[31m.example\"") == true, "\(sample)")
        #expect(!text.unicodeScalars.contains("\u{1b}"))
    }
}
