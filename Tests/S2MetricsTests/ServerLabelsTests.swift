import Foundation
import S2Metrics
import S2Model
import Testing

/// `s2scope_violations_total{server,rule,severity}`: the server label stays within its bound
/// however many peers there are, the heaviest servers get the labels, and every series is a
/// monotone counter while it exists.
struct ServerLabelsTests {
    /// The label values of every sample of `s2scope_violations_total` in an exposition.
    static func samples(_ text: String) -> [(labels: [String: String], value: Int)] {
        text.split(separator: "\n").filter { $0.hasPrefix("s2scope_violations_total{") }.map { line in
            let inner = line.dropFirst("s2scope_violations_total{".count).split(separator: "}", maxSplits: 1)[0]
            var labels: [String: String] = [:]
            for pair in inner.components(separatedBy: "\",") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                labels[String(kv[0])] = String(kv[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
            return (labels, Int(line.split(separator: " ").last!)!)
        }
    }

    @Test func tenThousandPeerDomainsStayWithinTheBound() {
        let n = 50
        let m = SensorMetrics(interfaces: ["eth0"], startTime: 0)
        let rules: [(String, Severity)] = [("STANZA-ADDR-4", .critical), ("DB-CORR-9", .medium), ("DB-CORR-9", .low), ("STREAM-HDR-8", .info)]
        var p = MetricsPublisher(metrics: m, rules: ["STANZA-ADDR-4", "DB-CORR-9", "STREAM-HDR-8"], maxServers: n)
        // 10,000 peer domains: a few heavy ones (Zipf-like traffic), every one breaking rules, in an
        // order that mixes heavy and light (7919 is prime: a permutation), so that the free labels
        // first go to whoever comes first and ranking must hand them to the heaviest.
        var violations = 0
        var now = 0.0
        var scrapes: [String] = []
        for round in 0..<3 {
            for k in 0..<10_000 {
                let i = (k * 7919 + 4999) % 10_000
                let domain = "peer\(i).example"
                p.traffic(server: domain, bytes: 1_000_000 / (i + 1) + 100)
                let (rule, sev) = rules[(i + round) % rules.count]
                p.violation(server: domain, rule: rule, severity: sev)
                violations += 1
                if k % 1000 == 999 {
                    now += 15
                    p.rankServers(now: now)
                    scrapes.append(String(decoding: m.render(), as: UTF8.self))
                }
            }
        }
        for text in scrapes {
            let servers = Set(Self.samples(text).map { $0.labels["server"]! })
            #expect(servers.count <= n + 1, "\(servers.count) server label values")
            #expect(Self.samples(text).count <= (n + 1) * rules.count)
        }
        let last = Self.samples(scrapes.last!)
        #expect(Set(last.map { $0.labels["server"]! }).contains(ServerLabels.other))
        #expect(p.servers.labelled.count == n)
        #expect(p.servers.trackedServers <= p.servers.sketchCapacity && p.servers.sketchCapacity == 4 * n,
                "memory is bounded by the sketch, not by the peers")
        // The heaviest peers have their own label (their share of traffic is far above 1/capacity).
        for i in 0..<20 { #expect(p.servers.labelled.contains("peer\(i).example"), "peer\(i) is among the heaviest") }
        #expect(p.servers.labelled.filter { Int($0.dropFirst(4).prefix { $0.isNumber })! < 100 }.count == n,
                "every label belongs to one of the 100 heaviest: \(p.servers.labelled.sorted())")
        // Every violation is in some series, except those of servers that lost their label.
        let sum = last.reduce(0) { $0 + $1.value }
        #expect(sum <= violations && sum > violations / 2, "\(sum) of \(violations)")
        let bySeverity = String(decoding: m.render(), as: UTF8.self).split(separator: "\n")
            .filter { $0.hasPrefix("s2scope_violations_by_severity_total{") }.reduce(0) { $0 + Int($1.split(separator: " ").last!)! }
        #expect(bySeverity == violations, "the by-severity counter has every violation")
    }

    @Test func labelsGoToTheHeaviestAndSeriesNeverDecrease() {
        let m = SensorMetrics(interfaces: ["eth0"], startTime: 0)
        var p = MetricsPublisher(metrics: m, rules: ["R-1"], maxServers: 2)
        p.rankInterval = 0
        var seen: [String: Int] = [:]
        func series() -> [String: Int] {
            Dictionary(uniqueKeysWithValues: Self.samples(String(decoding: m.render(), as: UTF8.self)).map { ($0.labels["server"]!, $0.value) })
        }
        func checkMonotone() {
            let now = series()
            for (s, v) in now { if let before = seen[s] { #expect(v >= before, "\(s) went from \(before) to \(v)") } }
            seen = now  // a series that disappeared may come back only from zero
        }
        p.traffic(server: "a.example", bytes: 1000)
        p.traffic(server: "b.example", bytes: 800)
        p.traffic(server: "c.example", bytes: 100)
        p.rankServers(now: 0)
        #expect(p.servers.labelled == ["a.example", "b.example"])
        p.violation(server: "c.example", rule: "R-1", severity: .low)
        p.violation(server: "b.example", rule: "R-1", severity: .low)
        checkMonotone()
        #expect(series() == ["other": 1, "b.example": 1])
        // c grows, but not to 1.5 × b: no change (no flapping between near equals).
        p.traffic(server: "c.example", bytes: 1000)  // 1100 < 1.5 × 800
        p.rankServers(now: 1)
        #expect(p.servers.labelled == ["a.example", "b.example"])
        // Now it does: b loses its label and its series; c's series starts at its promotion.
        p.traffic(server: "c.example", bytes: 200)  // 1300 ≥ 1200
        p.rankServers(now: 2)
        #expect(p.servers.labelled == ["a.example", "c.example"])
        #expect(series() == ["other": 1], "b's series is gone with its label")
        checkMonotone()
        p.violation(server: "c.example", rule: "R-1", severity: .low)
        p.violation(server: "b.example", rule: "R-1", severity: .low)
        checkMonotone()
        #expect(series() == ["other": 2, "c.example": 1], "b's later violation counts under other")
    }

    @Test func labelsMoveAtMostEveryRankInterval() {
        let m = SensorMetrics(interfaces: ["eth0"], startTime: 0)
        var p = MetricsPublisher(metrics: m, rules: ["R-1"], maxServers: 1)
        p.traffic(server: "a.example", bytes: 100)
        p.rankServers(now: 0)
        p.traffic(server: "b.example", bytes: 10_000)
        p.rankServers(now: 5)
        #expect(p.servers.labelled == ["a.example"], "5 s after the last ranking: not yet")
        p.rankServers(now: 10)
        #expect(p.servers.labelled == ["b.example"])
    }

    @Test func trafficDecaysSoTheRankingFollowsTheCurrentOne() {
        let l = ServerLabels(maxServers: 1)
        l.addTraffic("old.example", 10_000)
        l.rerank(now: 0)
        #expect(l.labelled == ["old.example"])
        // Ten minutes later (two half-lives) old.example counts 2,500.
        l.rerank(now: 600)
        #expect(abs(l.traffic(of: "old.example") - 2500) < 0.001)
        // new.example sends 3,000: not 1.5 × 2,500; then 4,000 in all: it takes the label.
        l.addTraffic("new.example", 3000)
        #expect(l.rerank(now: 600).promoted.isEmpty)
        l.addTraffic("new.example", 1000)
        let moved = l.rerank(now: 600)
        #expect(moved.demoted == ["old.example"] && moved.promoted == ["new.example"])
        // An hour without traffic: every count is tiny, and the order is kept.
        l.rerank(now: 4200)
        #expect(l.traffic(of: "new.example") < 1 && l.traffic(of: "new.example") > l.traffic(of: "old.example"))
    }

    @Test func freeLabelsAreGivenAtOnceAndNoTrafficMeansOther() {
        let m = SensorMetrics(interfaces: ["eth0"], startTime: 0)
        var p = MetricsPublisher(metrics: m, rules: ["R-1"], maxServers: 1)
        p.violation(server: "quiet.example", rule: "R-1", severity: .info)  // traffic unknown: other
        p.traffic(server: "a.example", bytes: 10)
        p.violation(server: "a.example", rule: "R-1", severity: .info)      // a free label, taken at once
        p.traffic(server: "b.example", bytes: 10)
        p.violation(server: "b.example", rule: "R-1", severity: .info)      // none left
        let s = Self.samples(String(decoding: m.render(), as: UTF8.self))
        #expect(Dictionary(uniqueKeysWithValues: s.map { ($0.labels["server"]!, $0.value) }) == ["a.example": 1, "other": 2])
        let none = SensorMetrics(interfaces: ["eth0"], startTime: 0)
        var q = MetricsPublisher(metrics: none, rules: ["R-1"], maxServers: 0)
        q.traffic(server: "a.example", bytes: 10)
        q.violation(server: "a.example", rule: "R-1", severity: .high)
        q.rankServers(now: 0)
        #expect(Self.samples(String(decoding: none.render(), as: UTF8.self)).map { $0.labels["server"]! } == ["other"])
    }

    @Test func hostileNamesAreInert() {
        let m = SensorMetrics(interfaces: ["eth0"], startTime: 0)
        var p = MetricsPublisher(metrics: m, rules: ["R-1"], maxServers: 4)
        let evil = "a\"b\\c\nd\u{1b}[31m.example" + String(repeating: "x", count: 400)
        p.traffic(server: evil, bytes: 10)
        p.violation(server: evil, rule: "R-1", severity: .high)
        let text = String(decoding: m.render(), as: UTF8.self)
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("s2scope_violations_total{") }
        #expect(lines.count == 1, "a line feed in a name must not start a new sample")
        #expect(lines.first?.hasPrefix("s2scope_violations_total{server=\"a\\\"b\\\\c\\\\x0ad\\\\x1b[31m.example") == true, "\(lines)")
        #expect(!text.unicodeScalars.contains("\u{1b}"))
        #expect(MetricsPublisher.visible(evil).count < 300, "at most 253 characters of the name")
    }
}
