import Foundation
import S2Engine
import S2Report
import S2TestSupport
import Testing

/// `--threads`: parsing on workers must not change a single byte of the report.
struct ParallelTests {
    /// Every lab and reassembly capture in one run: many connections, gaps, overlaps, RSTs,
    /// STARTTLS, misbehaving peers, several inputs.
    static let captures: [String] = ["fixtures/lab", "fixtures/reassembly"].flatMap { sub -> [String] in
        let dir = repoRoot.appendingPathComponent(sub)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".pcap") }.sorted().map { dir.appendingPathComponent($0).path }
    }

    static func report(_ paths: [String], threads: Int, round: (bytes: Int, steps: Int) = (1 << 20, 16_384),
                       keyLog: String? = nil) throws -> String {
        var c = EngineConfiguration()
        c.threads = threads
        c.parallelRound = round
        if let keyLog { #expect(c.loadKeyLog(path: keyLog) == nil) }
        let engine = Engine(configuration: c)
        for r in try Engine.open(paths: paths, filter: nil) { engine.read(r) }
        return JSONReport.document(engine.finish())
    }

    @Test func capturesArePresent() {
        #expect(Self.captures.count >= 30)
    }

    @Test(arguments: [(2, 32 << 10, 512), (2, 1 << 20, 16_384), (2, 64, 3), (3, 512, 7), (4, 1, 1)])
    func sameReportWithThreads(threads: Int, bytes: Int, steps: Int) throws {
        let one = try Self.report(Self.captures, threads: 1)
        let many = try Self.report(Self.captures, threads: threads, round: (bytes, steps))
        #expect(one.contains("\"dialbacks\": ["))
        #expect(many == one, "threads \(threads), rounds of \(bytes) bytes / \(steps) steps changed the report")
    }

    @Test(arguments: ["prosody-tls12", "prosody-tls13"])
    func sameDecryptedReportWithThreads(_ name: String) throws {
        let dir = repoRoot.appendingPathComponent("fixtures/tls")
        let pcap = dir.appendingPathComponent("\(name).pcap").path, keys = dir.appendingPathComponent("\(name).keylog").path
        let one = try Self.report([pcap], threads: 1, keyLog: keys)
        #expect(one.contains("\"outcome\": \"valid\""))
        #expect(try Self.report([pcap], threads: 2, round: (100, 2), keyLog: keys) == one)
    }
}

extension ParallelTests {
    /// An engine given up before `finish` (an error path, a cancelled run) stops its workers
    /// without judging what they still hold, and a new run in the same process is unaffected.
    @Test func droppedEngineStopsItsWorkers() throws {
        let path = Self.captures[0]
        do {
            var c = EngineConfiguration()
            c.threads = 3
            c.parallelRound = (64, 3)
            let engine = Engine(configuration: c)
            #expect(engine.parsingThreads == 2)
            for r in try Engine.open(paths: [path], filter: nil) { engine.read(r) }
        }
        #expect(try Self.report([path], threads: 3, round: (64, 3)) == Self.report([path], threads: 1))
    }
}

extension ParallelTests {
    /// Under a memory budget that is reached, the connections closed early — and so the report —
    /// are the same whatever the thread count: the budget is decided on the state after each
    /// packet, parsers on the workers and rules' state included.
    @Test(arguments: [(2, 32 << 10, 512), (2, 64, 3), (4, 1, 1)])
    func sameEvictionsUnderAMemoryBudget(threads: Int, bytes: Int, steps: Int) throws {
        // Each connection stops inside a stanza (its initiator's parser stays live); every third
        // also sends a spoofed stanza first, which demands a reaction (rules' state).
        var t = ""
        for i in 1...999 {
            t += "\(i)C> $HDR to='b.example' from='a.example'>\n\(i)S> $HDR from='b.example' to='a.example' id='s\(i)'>\n"
            if i % 3 == 0 { t += "\(i)C> <message from='m@evil.example' to='v@b.example'/>\n" }
            t += "\(i)C> <message from='u@a.example' to='v@b.example'><body>unfinished\n"
        }
        func report(_ threads: Int, _ round: (Int, Int)) throws -> String {
            var c = EngineConfiguration()
            c.threads = threads
            c.parallelRound = round
            c.maxMemory = 6 << 20
            return JSONReport.document(try Engine.analyze(transcript: t, configuration: c))
        }
        let one = try report(1, (1 << 20, 16_384))
        #expect(one.contains("\"connections_evicted_for_memory\": "))
        #expect(!one.contains("\"connections_evicted_for_memory\": 0,"))
        #expect(try report(threads, (bytes, steps)) == one, "threads \(threads), rounds of \(bytes) bytes / \(steps) steps")
    }
}
