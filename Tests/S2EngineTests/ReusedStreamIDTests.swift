@testable import S2Dialback
import S2Engine
import S2Model
import S2Report
import S2Rules
import S2Synth
import Testing

/// A server (or a hostile peer) can issue one stream id on every connection, and one stream can
/// carry one domain pair's db:result again and again. What an offline run keeps by stream id and
/// by binding must then stay a few entries, not one per connection or exchange: each one made
/// every later insert and lookup walk them all (quadratic, `make hostile-scaling` stream-id-reuse).
struct ReusedStreamIDTests {
    /// Connections 1…n from distinct addresses, each issued stream id 'reused', each closed;
    /// those in `lost` lose a packet of the initiator (the capture could not read all of it).
    static func reusedID(_ n: Int, lost: Set<Int> = []) -> String {
        var t: [String] = []
        for c in 1...n {
            t.append("@\(c) 10.0.\(c / 200).\(c % 200 + 10) -> 10.0.0.2")
            t.append("\(c)C> $HDR to='b.example' from='r\(c).example'>")
            t.append("\(c)S> $HDR from='b.example' to='r\(c).example' id='reused'>")
            if lost.contains(c) { t.append("\(c)C~ <presence/>") }
            t.append("\(c)C> </stream:stream>\n\(c)S> </stream:stream>\n\(c)close")
        }
        return t.joined(separator: "\n")
    }

    @Test func retiredConnectionsKeepTheFirstAndTheFirstUnreadable() throws {
        let engine = try ExchangeArchiveTests.running(Self.reusedID(60, lost: [17, 40]))
        let model = engine.correlator.model
        #expect(model.connections.isEmpty)
        let seen = try #require(model.sighting(ofStreamID: "reused"))
        #expect(seen.first.id == ConnectionID(1))
        #expect(seen.anyUnreadable)
        // Connection 1 and connection 17, the first the capture could not fully read.
        #expect(model.retiredByStreamID.count == 2)
        #expect(model.sighting(ofStreamID: "other") == nil)
    }

    @Test func readableConnectionsKeepOnlyTheFirst() throws {
        let model = try ExchangeArchiveTests.running(Self.reusedID(60)).correlator.model
        let seen = try #require(model.sighting(ofStreamID: "reused"))
        #expect(seen.first.id == ConnectionID(1))
        #expect(!seen.anyUnreadable)
        #expect(model.retiredByStreamID.count == 1)
    }

    /// The connection that retires first is not the first by ID: the index keeps the lower ID when
    /// it comes, and drops what it no longer needs.
    @Test func aLaterRetiredLowerIDReplacesTheFiled() throws {
        let t = [Self.reusedID(1).replacingOccurrences(of: "1close", with: ""),
                 Self.reusedID(3).split(separator: "\n").filter { !$0.hasPrefix("1") && !$0.hasPrefix("@1") }.joined(separator: "\n"),
                 "1close"].joined(separator: "\n")
        let model = try ExchangeArchiveTests.running(t).correlator.model
        #expect(model.connections.isEmpty)
        let seen = try #require(model.sighting(ofStreamID: "reused"))
        #expect(seen.first.id == ConnectionID(1))
        #expect(model.retiredByStreamID.count == 1)
    }

    /// One stream carries db:result for one pair n times, each verified and answered: each settled
    /// exchange is written out under the same binding; only the newest can answer a late verify.
    @Test func oneBindingWrittenManyTimesKeepsOneEntry() throws {
        var t = [Example.openA, Example.verifyB.split(separator: "\n").prefix(4).joined(separator: "\n")]
        for i in 0..<40 {
            let key = String(repeating: (i < 16 ? "0" : "") + String(i, radix: 16), count: 32)
            t.append("C> <db:result from='a.example' to='b.example'>\(key)</db:result>")
            t.append("2C> <db:verify from='b.example' to='a.example' id='s1'>\(key)</db:verify>")
            t.append("2S> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>")
            t.append("S> <db:result from='b.example' to='a.example' type='valid'/>")
        }
        let model = try ExchangeArchiveTests.running(t.joined(separator: "\n")).correlator.model
        #expect(model.exchanges.archivedCount == 40)
        #expect(model.spilledBindings.count == 1)
        // The late verify of the newest key finds its exchange (the binding answers with it).
        let newest = String(repeating: "27", count: 32)
        #expect(model.exchange(streamID: "s1", sender: "a.example", target: "b.example")?.key == newest)
    }
}
