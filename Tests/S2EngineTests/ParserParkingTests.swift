import Foundation
import S2Engine
import S2Report
import S2TestSupport
import Testing

/// Whether a stream that waits after its header keeps its expat parser or parks it
/// (`EngineConfiguration.parkIdleParsersAbove`) must not change a byte of any report.
struct ParserParkingTests {
    /// Every capture of the fixtures, one report each (decode fixtures include damaged files).
    static let captures: [String] = ["lab", "reassembly", "decode", "snaplen", "tls", "multisensor"].flatMap { sub -> [String] in
        let dir = repoRoot.appendingPathComponent("fixtures/\(sub)")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }.sorted().map { dir.appendingPathComponent($0).path }
    }

    static func reports(parkAbove: Int, threads: Int = 1) -> [String] {
        captures.map { path in
            var c = EngineConfiguration()
            c.parkIdleParsersAbove = parkAbove
            c.threads = threads
            c.parallelRound = (512, 7)
            let engine = Engine(configuration: c)
            guard let readers = try? Engine.open(paths: [path], filter: nil) else { return "unreadable \(path)" }
            for r in readers { engine.read(r) }
            return JSONReport.document(engine.finish())
        }
    }

    @Test func parkingNeverChangesAReport() {
        #expect(Self.captures.count >= 90)
        let kept = Self.reports(parkAbove: .max)
        #expect(kept.filter { $0.contains("\"dialbacks\": [\n") }.count >= 40)
        for (name, reports) in [("always parked", Self.reports(parkAbove: 0)),
                                ("default", Self.reports(parkAbove: EngineConfiguration().parkIdleParsersAbove)),
                                ("always parked, 2 threads", Self.reports(parkAbove: 0, threads: 2))] {
            for (i, r) in reports.enumerated() where r != kept[i] {
                Issue.record("\(name): \(Self.captures[i]) changed its report")
            }
        }
    }

    /// Streams kept idle are charged to the memory budget: where parking starts within a run, the
    /// connections a reached budget closes are the same for every thread count (the engine decides
    /// parking in capture order, not each parsing thread).
    @Test(arguments: [(2, 64, 3), (4, 1, 1)])
    func sameEvictionsWhenParkingStartsMidRun(threads: Int, bytes: Int, steps: Int) throws {
        var t = ""
        for i in 1...600 {
            t += "\(i)C> $HDR to='b.example' from='a.example'>\n"
            if i % 2 == 0 { t += "\(i)S> $HDR from='b.example' to='a.example' id='s\(i)'>\n" }
        }
        func report(_ threads: Int, _ round: (Int, Int), parkAbove: Int = 250) throws -> String {
            var c = EngineConfiguration()
            c.threads = threads
            c.parallelRound = round
            c.parkIdleParsersAbove = parkAbove
            c.maxMemory = 5 << 20
            return JSONReport.document(try Engine.analyze(transcript: t, configuration: c))
        }
        let one = try report(1, (1 << 20, 16_384))
        #expect(!one.contains("\"connections_evicted_for_memory\": 0,"))
        #expect(try report(1, (1 << 20, 16_384), parkAbove: 0) != one, "the kept parsers are charged: fewer evictions when all park")
        #expect(try report(threads, (bytes, steps)) == one, "threads \(threads), rounds of \(bytes) bytes / \(steps) steps")
    }
}
