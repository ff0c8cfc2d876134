import Foundation
import S2Capture
import S2Engine
import S2Model
import S2Report
import S2TestSupport
import Testing

/// The parsing threads under stress: many workers (more than there are cores, so that they are
/// preempted at every point of a hand-off) on rounds of one byte or one step, so that every
/// packet is a round and every hand-off between the reading thread and the workers happens as
/// often as the captures allow. Every capture of `fixtures/` goes through, the TLS ones
/// decrypted with their key logs and with the secrets embedded in pcapng. The reports, and the
/// events of the live-style runs, must be byte-identical to one thread.
///
/// Cheap enough for the normal suite; meant to be run alone under ThreadSanitizer as well
/// (`make tsan-stress`: `swift test --sanitize=thread --filter ParallelStress`).
struct ParallelStressTests {
    static func captures(in sub: String) -> [String] {
        let dir = repoRoot.appendingPathComponent("fixtures/\(sub)")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }.sorted().map { dir.appendingPathComponent($0).path }
    }

    /// Every capture without TLS: decoding oddities, the lab's misbehaving peers, reassembly
    /// (gaps, overlaps, RSTs), several sensors, snap lengths.
    static let plain = ["decode", "lab", "multisensor", "reassembly", "snaplen"].flatMap(captures(in:))
    /// Every TLS capture; each key log decrypts its own capture, the pcapng ones carry theirs.
    static let tls = captures(in: "tls")
    static let keyLogs: [String] = {
        let dir = repoRoot.appendingPathComponent("fixtures/tls")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".keylog") }.sorted().map { dir.appendingPathComponent($0).path }
    }()

    static func configuration(threads: Int, round: (bytes: Int, steps: Int), secretsFor paths: [String],
                              inlineShare: Int? = nil, depth: Int? = nil) -> EngineConfiguration {
        var c = EngineConfiguration()
        c.threads = threads
        c.parallelRound = round
        if let depth { c.parallelDepth = depth }  // nil: the engine's own default
        c.parallelInlineShare = inlineShare
        for k in keyLogs { #expect(c.loadKeyLog(path: k) == nil) }
        _ = c.loadEmbeddedSecrets(paths: paths)
        return c
    }

    /// One offline run over `paths` as `analyze` does it: the JSON report.
    static func report(_ paths: [String], threads: Int, round: (bytes: Int, steps: Int) = (1 << 20, 16_384),
                       inlineShare: Int? = nil, depth: Int? = nil) throws -> String {
        let engine = Engine(configuration: configuration(threads: threads, round: round, secretsFor: paths, inlineShare: inlineShare,
                                                         depth: depth))
        #expect(threads == 1 || engine.parsingThreads == threads - 1, "\(engine.parsingThreads) parsing threads started")
        for r in try Engine.open(paths: paths, filter: nil) { engine.read(r) }
        return JSONReport.document(engine.finish())
    }

    /// The one-thread reports, computed once for every test that compares with them.
    static let plainReport = Result { try report(plain, threads: 1) }
    static let tlsReport = Result { try report(tls, threads: 1) }

    @Test func everyFixtureIsThere() throws {
        #expect(Self.plain.count >= 80)
        #expect(Self.tls.count == 10)
        #expect(Self.keyLogs.count == 10)
        // The runs below judge dialback exchanges, and decrypt the TLS captures.
        #expect(try Self.plainReport.get().contains("\"outcome\": \"valid\""))
        let tls = try Self.tlsReport.get()
        #expect(tls.contains("\"outcome\": \"valid\""))
        #expect(tls.contains("\"decryption\": \"decrypted\""))
    }

    static let rounds: [(bytes: Int, steps: Int)] = [(1, 1), (1, 1 << 20), (7, 3), (100, 2)]

    @Test(arguments: [8, 16], 0..<rounds.count)
    func offlineReportsAreIdentical(threads: Int, roundIndex: Int) throws {
        let round = Self.rounds[roundIndex]
        let plain = try Self.report(Self.plain, threads: threads, round: round)
        #expect(plain == (try Self.plainReport.get()), "threads \(threads), rounds of \(round.bytes) bytes / \(round.steps) steps changed the report")
        let tls = try Self.report(Self.tls, threads: threads, round: round)
        #expect(tls == (try Self.tlsReport.get()), "threads \(threads), rounds of \(round.bytes) bytes / \(round.steps) steps changed the decrypted report")
    }

    /// The plain and the TLS captures give the one-thread reports with `threads` on each of `rounds`.
    static func expectOneThreadReports(threads: Int, rounds: [(bytes: Int, steps: Int)], inlineShare: Int? = nil, depth: Int? = nil,
                                       _ what: String) throws {
        for round in rounds {
            let plainRun = try report(Self.plain, threads: threads, round: round, inlineShare: inlineShare, depth: depth)
            #expect(plainRun == (try plainReport.get()), "threads \(threads), \(what), rounds of \(round.bytes) bytes / \(round.steps) steps")
            let tlsRun = try report(Self.tls, threads: threads, round: round, inlineShare: inlineShare, depth: depth)
            #expect(tlsRun == (try tlsReport.get()), "threads \(threads), \(what), rounds of \(round.bytes) bytes / \(round.steps) steps, decrypted")
        }
    }

    /// The reading thread parses a share of the connections itself (all of them at 64 of 64, half
    /// at 32): which thread parses a connection must not change the report.
    @Test(arguments: [2, 8], [64, 32, 5])
    func readingThreadsShareOfParsingChangesNothing(threads: Int, share: Int) throws {
        try Self.expectOneThreadReports(threads: threads, rounds: [Self.rounds[0], Self.rounds[3]], inlineShare: share,
                                        "\(share)/64 parsed by the reading thread")
    }

    /// How many rounds the workers may run ahead of the one applied: one (each side waits for the
    /// other) to many (tiny rounds, so that a capture's end or a flush finds several in flight).
    @Test(arguments: [2, 8], [1, 3, 7])
    func roundsInFlightChangeNothing(threads: Int, depth: Int) throws {
        try Self.expectOneThreadReports(threads: threads, rounds: [Self.rounds[0], Self.rounds[2]], depth: depth,
                                        "\(depth) rounds in flight")
    }
}

extension ParallelStressTests {
    /// One capture driven the way `live` drives the engine: packets one by one, what was read
    /// judged after every `flushEvery` packets, and capture time moved on without packets in the
    /// silences of the capture and after its end (the idle path: expiry of flows, reaction timers).
    /// Returns every event line `live --format jsonl` would write, with a mark where each flush
    /// and each idle advance returned (a finding is due when its packets were read, not when a
    /// round fills), then the final report.
    static func liveEvents(_ path: String, threads: Int, round: (bytes: Int, steps: Int) = (1 << 20, 16_384), flushEvery: Int = 1,
                           inlineShare: Int? = nil) throws -> [String] {
        var c = configuration(threads: threads, round: round, secretsFor: [path], inlineShare: inlineShare)
        c.retainHistory = false
        // Short enough that the silences of the lab captures and the final idle period expire flows.
        c.reassembly.idleTimeoutSeconds = 2
        let engine = Engine(configuration: c)
        var lines: [String] = []
        engine.onViolation = { v in lines.append(JSONReport.line { JSONReport.violation(&$0, v, event: true) }) }
        engine.onDialback = { x in lines.append(JSONReport.line { JSONReport.dialback(&$0, x, event: true) }) }
        engine.onAnomaly = { a in lines.append(JSONReport.line { JSONReport.anomaly(&$0, a, event: true) }) }
        engine.onConnectionClosed = { m, tls in lines.append(JSONReport.line { JSONReport.connection(&$0, m.summary, event: true, tls: tls) }) }
        let reader = try Engine.open(path: path, inputIndex: 0, filter: nil)
        var last: Timestamp?
        var n = 0
        _ = reader.read { p in
            // A silence of more than 50 ms: the sensor's poll came back empty in the middle of it.
            if let t = last, p.frame.time.secondsSince(t) > 0.05 {
                engine.advanceIdle(to: t.adding(seconds: p.frame.time.secondsSince(t) / 2))
                lines.append("-- idle before frame \(p.frame.number)")
            }
            engine.process(p.bytes, linkType: p.linkType, frame: p.frame, wireLength: p.wireLength)
            last = p.frame.time
            n += 1
            if n % flushEvery == 0 {
                engine.flushParsing()
                lines.append("-- flushed after frame \(p.frame.number)")
            }
            return true
        }
        engine.flushParsing()
        lines.append("-- flushed at the end")
        if let t = last {
            engine.advanceIdle(to: t.adding(seconds: 1))
            lines.append("-- idle 1 s after the end")
            engine.advanceIdle(to: t.adding(seconds: 60))
            lines.append("-- idle 60 s after the end")
        }
        lines.append(JSONReport.document(engine.finish()))
        return lines
    }

    static let liveCaptures = plain + tls
    /// One thread, marked at the same points as the runs compared with it (flushing is a no-op there).
    static let liveBaselines: [Int: Result<[[String]], any Error>] = Dictionary(uniqueKeysWithValues: [1, 2, 3].map { k in
        (k, Result { try liveCaptures.map { try liveEvents($0, threads: 1, flushEvery: k) } })
    })

    @Test func liveStyleRunsJudgeSomething() throws {
        let all = try #require(Self.liveBaselines[1]).get()
        #expect(all.count == Self.liveCaptures.count)
        let events = all.flatMap { $0.dropLast() }.filter { !$0.hasPrefix("--") }
        #expect(events.contains { $0.contains("\"event\":\"dialback\"") && $0.contains("\"outcome\":\"valid\"") })
        #expect(events.contains { $0.contains("\"event\":\"violation\"") })
        #expect(events.contains { $0.contains("\"event\":\"connection\"") && $0.contains("\"decryption\":\"decrypted\"") })
    }

    @Test(arguments: [(8, 1, 1, 1, nil), (16, 1, 1, 3, nil), (16, 64, 5, 2, nil), (2, 1, 1, 1, 32), (4, 64, 5, 2, 64)])
    func liveStyleEventsAreIdentical(threads: Int, bytes: Int, steps: Int, flushEvery: Int, inlineShare: Int?) throws {
        let baseline = try #require(Self.liveBaselines[flushEvery]).get()
        for (i, path) in Self.liveCaptures.enumerated() {
            let events = try Self.liveEvents(path, threads: threads, round: (bytes, steps), flushEvery: flushEvery, inlineShare: inlineShare)
            #expect(events == baseline[i], "\(path): threads \(threads), rounds of \(bytes) bytes / \(steps) steps, flush every \(flushEvery) packets changed the events")
        }
    }
}

extension ParallelStressTests {
    /// Engines given up in the middle of every capture, with rounds in flight on 15 workers: each
    /// stops its workers without judging what they hold (under the sanitizers: no race with the
    /// workers, nothing used after it was freed), and a full run afterwards is unaffected.
    @Test func enginesDroppedMidCaptureStopTheirWorkers() throws {
        for path in Self.liveCaptures {
            let engine = Engine(configuration: Self.configuration(threads: 16, round: (1, 1), secretsFor: [path]))
            #expect(engine.parsingThreads == 15)
            let reader = try Engine.open(path: path, inputIndex: 0, filter: nil)
            var n = 0
            _ = reader.read { p in
                engine.process(p.bytes, linkType: p.linkType, frame: p.frame, wireLength: p.wireLength)
                n += 1
                return n < 12
            }
        }
        #expect(try Self.report(Self.tls, threads: 16, round: (1, 1)) == (try Self.tlsReport.get()))
    }
}
