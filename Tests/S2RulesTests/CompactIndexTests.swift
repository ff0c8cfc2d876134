import Foundation
@testable import S2Dialback
import S2Engine
import S2Model
import S2Report
import S2Rules
import S2Synth
import S2TestSupport
import Testing

/// The compact indexes that keep an offline run's cross-connection registries small must answer
/// exactly what the dictionaries they replaced answered.
struct CompactIndexTests {
    /// Inserts and removes at random, with hashes drawn from a small set (many entries per hash)
    /// and from hashes that share their top bits (the tag): every lookup must hold what a plain
    /// multimap holds, and no more than it plus entries whose hash shares the tag.
    @Test(arguments: [1, 2, 3], [false, true])
    func hashIndexAgreesWithAMultimap(seed: UInt64, onDisk: Bool) {
        var rng = SplitMix(state: seed)
        let index = HashIndex(onDisk: onDisk)
        var truth: [Int: [Int]] = [:]
        // Hashes 0…199, and 50 that differ only in their low bits (same tag).
        var hashes: [Int] = []
        for i in 0..<200 {
            var g = SplitMix(state: UInt64(i))
            hashes.append(Int(truncatingIfNeeded: g.next()))
        }
        for i in 0..<50 { hashes.append(0x1234_5600_0000_0000 | i) }
        let distinct = Array(Set(hashes))
        let sameTag = Dictionary(grouping: distinct) { UInt(bitPattern: $0) >> 40 }
        for step in 0..<8_000 {
            let h = hashes[Int(rng.next() % UInt64(hashes.count))]
            if rng.next() % 3 == 0, let v = truth[h]?.randomElement(using: &rng) {
                index.remove(v, at: h)
                truth[h]!.remove(at: truth[h]!.firstIndex(of: v)!)
            } else {
                let v = Int(rng.next() % 5_000)
                index.insert(v, at: h)
                truth[h, default: []].append(v)
            }
            if step % 199 == 0 {
                for h in distinct {
                    let got = index[h]
                    let want: [Int] = truth[h] ?? []
                    // Every wanted value, each as often as inserted…
                    for v in Set(want) {
                        let inIndex = got.filter { $0 == v }.count
                        let inTruth = want.filter { $0 == v }.count
                        #expect(inIndex >= inTruth)
                    }
                    // …and nothing beyond entries of hashes with the same tag.
                    var expected = 0
                    for other in sameTag[UInt(bitPattern: h) >> 40] ?? [] { expected += truth[other]?.count ?? 0 }
                    #expect(got.count == expected)
                }
            }
        }
        #expect(index.count == truth.values.reduce(0) { $0 + $1.count })
    }

    @Test func hashIndexRefusesValuesItCannotHold() {
        let index = HashIndex()
        index.insert(-1, at: 7)
        index.insert(HashIndex.maxValue + 1, at: 7)
        index.insert(HashIndex.maxValue, at: 7)
        #expect(index[7] == [HashIndex.maxValue])
        #expect(index.count == 1)
    }

    /// On disk, slots live in pages of which 64 are cached: far more pages than that, written and
    /// read at random while the store grows, must read back as an array would.
    @Test func slotStoreOnDiskMatchesAnArray() {
        let store = SlotStore(count: 0, onDisk: true)
        var truth: [UInt64] = []
        var rng = SplitMix(state: 42)
        for round in 1...4 {
            store.grow(to: round * 10_000)
            truth.append(contentsOf: repeatElement(0, count: 10_000))
            for _ in 0..<30_000 {
                let i = Int(rng.next() % UInt64(truth.count))
                if rng.next() % 2 == 0 {
                    let v = rng.next()
                    store[i] = v
                    truth[i] = v
                } else {
                    #expect(store[i] == truth[i])
                }
            }
        }
        #expect(store.isOnDisk)
        #expect((0..<truth.count).allSatisfy { store[$0] == truth[$0] })
    }

    @Test(arguments: [false, true])
    func recordOffsetsPackAndFallBack(onDisk: Bool) {
        let o = RecordOffsets(onDisk: onDisk)
        o[3] = (offset: 100, length: 20)
        o[0] = (offset: 0, length: 1)
        o[9] = (offset: 1 << 41, length: 5)          // offset past what packs
        o[12] = (offset: 7, length: 1 << 25)          // length past what packs
        o[-4] = (offset: 1, length: 1)
        o[1 << 30] = (offset: 2, length: 2)           // number past the dense range
        #expect(o[3]! == (offset: 100, length: 20))
        #expect(o[0]! == (offset: 0, length: 1))
        #expect(o[9]! == (offset: 1 << 41, length: 5))
        #expect(o[12]! == (offset: 7, length: 1 << 25))
        #expect(o[-4]! == (offset: 1, length: 1))
        #expect(o[1 << 30]! == (offset: 2, length: 2))
        #expect(o[4] == nil && o[100] == nil)
        #expect(o.numbers == [-4, 0, 3, 9, 12, 1 << 30])
        #expect(o.count == 6)
        o[3] = (offset: 500, length: 9)               // replaced, not counted twice
        o[9] = nil
        #expect(o[3]! == (offset: 500, length: 9) && o[9] == nil)
        #expect(o.count == 5)
    }

    @Test(arguments: [true, false])
    func keyRegistryKeepsTheFirstUse(onDisk: Bool) {
        let r = DialbackKeyRegistry(onDisk: onDisk)
        let pair = DomainPair(sender: "a.example", target: "b.example")
        for i in 0..<2_000 {
            #expect(r.firstUse(recording: .init(key: "key\(i)", streamID: i % 2 == 0 ? "s\(i)" : nil, pair: pair, connection: ConnectionID(i))) == nil)
        }
        #expect(r.firstUse(recording: .init(key: "key7", streamID: "other", pair: pair, connection: ConnectionID(9_999)))?.connection == ConnectionID(7))
        #expect(r.count == 2_000)
        #expect(r.firstUse(of: "key7") == .init(key: "key7", streamID: nil, pair: pair, connection: ConnectionID(7)))
        #expect(r.firstUse(of: "key1234") == .init(key: "key1234", streamID: "s1234", pair: pair, connection: ConnectionID(1234)))
        #expect(r.firstUse(of: "key2000") == nil)
        // Past the limit a new key is not remembered.
        let small = DialbackKeyRegistry(onDisk: onDisk, limit: 1)
        #expect(small.firstUse(recording: .init(key: "a", streamID: nil, pair: pair, connection: ConnectionID(1))) == nil)
        #expect(small.firstUse(recording: .init(key: "b", streamID: nil, pair: pair, connection: ConnectionID(2))) == nil)
        #expect(small.firstUse(of: "b") == nil && small.count == 1)
    }

    @Test(arguments: [true, false])
    func issuedStreamIDsAreKeptPerServer(onDisk: Bool) {
        let r = IssuedStreamIDs(onDisk: onDisk)
        r.record("s1", at: "10.0.0.2", on: ConnectionID(1))
        r.record("s1", at: "10.0.0.3", on: ConnectionID(2))
        r.record("s1", at: "10.0.0.2", on: ConnectionID(3))
        #expect(r.firstConnection(issuing: "s1", at: "10.0.0.2") == ConnectionID(1))
        #expect(r.firstConnection(issuing: "s1", at: "10.0.0.3") == ConnectionID(2))
        #expect(r.firstConnection(issuing: "s2", at: "10.0.0.2") == nil)
        #expect(r.count == 2)
    }

    /// DB-RES-2 and STREAM-HDR-9 find a first use written to disk long before, by a connection
    /// retired since (offline), and still do in a live run, which keeps them in memory.
    @Test(arguments: [true, false])
    func reuseFoundAcrossRetiredConnections(retainHistory: Bool) throws {
        var lines: [String] = []
        for i in 1...300 {
            lines.append("@\(i) 10.0.0.1 -> 10.0.0.2")
            lines.append("\(i)C> $HDR to='b.example' from='a.example'>")
            lines.append("\(i)S> $HDR from='b.example' to='a.example' id='s\(i)'>")
            lines.append("\(i)C> <db:result from='a.example' to='b.example'>k\(i)</db:result>")
            lines.append("\(i)C> </stream:stream>\n\(i)S> </stream:stream>\n\(i)close")
        }
        // Connection 301 reuses connection 5's key on a new stream id; 302 gets stream id s9 again.
        lines.append("@301 10.0.0.1 -> 10.0.0.2\n301C> $HDR to='b.example' from='a.example'>\n301S> $HDR from='b.example' to='a.example' id='s301'>")
        lines.append("301C> <db:result from='a.example' to='b.example'>k5</db:result>")
        lines.append("@302 10.0.0.1 -> 10.0.0.2\n302C> $HDR to='b.example' from='a.example'>\n302S> $HDR from='b.example' to='a.example' id='s9'>")
        var configuration = EngineConfiguration()
        configuration.retainHistory = retainHistory
        let engine = Engine(configuration: configuration)
        var found: [Violation] = []
        engine.onViolation = { found.append($0) }
        for (i, f) in try Transcript(lines.joined(separator: "\n")).frames.enumerated() {
            f.bytes.withUnsafeBytes { b in
                engine.process(b, linkType: 1, frame: FrameRef(input: 0, number: i + 1, time: f.time), wireLength: f.bytes.count)
            }
        }
        _ = engine.finish()
        let reuse = found.filter { $0.rule == "DB-RES-2" }
        #expect(reuse.map(\.connection) == [ConnectionID(301)])
        #expect(reuse.first?.message.contains("already sent on C5") == true)
        let again = found.filter { $0.rule == "STREAM-HDR-9" }
        #expect(again.map(\.connection) == [ConnectionID(302)])
        #expect(again.first?.message.contains("first on C9") == true)
    }

    /// The history files go to the directory asked for (`$TMPDIR` by default, which glibc's
    /// `tmpfile` ignores): where /tmp is in memory, users point it at a disk. A directory that
    /// cannot hold them leaves the records in memory.
    @Test func temporaryFilesGoWhereTheyAreAsked() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("s2scope-tmp-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let f = try #require(anonymousTemporaryFile(in: dir.path))
        defer { fclose(f) }
        let target = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fileno(f))")
        #expect(target.hasPrefix(dir.path + "/"), "\(target)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty, "the file has no name")
        #expect(anonymousTemporaryFile(in: dir.path + "/missing") == nil)
        let file = RecordFile(directory: dir.path + "/missing")
        #expect(file.append([1, 2, 3]) == nil)
    }
}
