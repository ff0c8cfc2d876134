import S2Dialback
import S2Engine
import S2Model
import S2Report
import S2Rules
import S2Synth
import Testing

/// Offline runs write settled exchanges to a temporary file (memory flat in the number of
/// exchanges); what the report and the rules see must not change, including when a late db:verify
/// reaches an exchange already written.
struct ExchangeArchiveTests {
    static let verifyC3 = """
        @3 10.0.0.2 -> 10.0.0.1
        3C> $HDR to='a.example' from='b.example'>
        3S> $HDR from='a.example' to='b.example' id='s3'>
        3C> <db:verify from='b.example' to='a.example' id='s1'>\(Example.key)</db:verify>
        """
    static let closeA = "C> </stream:stream>\nS> </stream:stream>\nclose"

    @Test func settledExchangeReadsBackWhole() throws {
        let r = try Engine.analyze(transcript: Example.clean)
        #expect(r.exchanges.archivedCount == 1)
        let x = try #require(r.exchanges.first)
        #expect((x.number, x.originating, x.receiving, x.streamID, x.key) == (1, "a.example", "b.example", "s1", Example.key))
        #expect((x.resultConnection, x.verifyConnection, x.outcome, x.verifyType) == (ConnectionID(1), ConnectionID(2), "valid", "valid"))
        #expect(x.verifyKey == Example.key && x.verifyStreamID == "s1")
        #expect((x.originatingAddress, x.receivingAddress, x.authoritativeAddress) == ("10.0.0.1", "10.0.0.2", "10.0.0.1"))
        #expect(x.steps.map(\.kind) == [.resultRequest, .verifyRequest, .verifyReply, .resultReply])
        #expect(x.steps.map(\.summary) == ["<db:result from='a.example' to='b.example'>",
                                            "<db:verify from='b.example' to='a.example' id='s1'>",
                                            "<db:verify type='valid'/>", "<db:result type='valid'/>"])
        #expect(x.steps.map(\.connection) == [ConnectionID(1), ConnectionID(2), ConnectionID(2), ConnectionID(1)])
        #expect(x.steps[3].carriesID == false && x.steps[3].carriesKey == false && x.steps[3].type == "valid")
        #expect(x.resultReplyFrame != nil && x.verifyReplyFrame != nil && x.verifyFrame != nil)
    }

    /// The result connection closed (its exchange written away), then the receiving server
    /// verifies the same key and id again: that db:verify matches the written exchange — no
    /// "no such db:result" — and its answer joins it.
    @Test func lateVerifyFindsTheWrittenExchange() throws {
        let t = [Example.validated, Self.closeA, Self.verifyC3,
                 "3S> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>"].joined(separator: "\n")
        let r = try Engine.analyze(transcript: t)
        #expect(!r.violations.contains { $0.rule == "DB-CORR-1" }, "\(r.violations.map(\.message))")
        #expect(r.exchanges.count == 1)
        #expect(r.exchanges.archivedCount == 0)
        let x = try #require(r.exchanges.first)
        #expect(x.steps.map(\.kind) == [.resultRequest, .verifyRequest, .verifyReply, .resultReply, .verifyReply])
        #expect(x.steps.last?.connection == ConnectionID(3))
    }

    /// Two exchanges with the same binding (the server reused stream id s1 on connection 4), both
    /// written: a late db:verify with the second key finds the second, as the binding in memory
    /// would have — not the first, whose other key would look like a mismatch (DB-CORR-1).
    @Test func bindingWrittenTwiceAnswersWithTheNewerExchange() throws {
        let key2 = String(repeating: "ab", count: 32)
        let t = [Example.validated, Self.closeA,
                 "@4 10.0.0.1 -> 10.0.0.2",
                 "4C> $HDR to='b.example' from='a.example'>",
                 "4S> $HDR from='b.example' to='a.example' id='s1'>",
                 "4C> <db:result from='a.example' to='b.example'>\(key2)</db:result>",
                 "2C> <db:verify from='b.example' to='a.example' id='s1'>\(key2)</db:verify>",
                 "2S> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>",
                 "4S> <db:result from='b.example' to='a.example' type='valid'/>",
                 "4C> </stream:stream>\n4S> </stream:stream>\n4close",
                 Self.verifyC3.replacingOccurrences(of: Example.key, with: key2),
                 "3S> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>"].joined(separator: "\n")
        let r = try Engine.analyze(transcript: t)
        #expect(r.violations.contains { $0.rule == "STREAM-HDR-9" })
        #expect(!r.violations.contains { $0.rule == "DB-CORR-1" }, "\(r.violations.map(\.message))")
        #expect(r.exchanges.map(\.key) == [Example.key, key2])
        #expect(r.exchanges.map(\.steps.count) == [4, 5])
        // Report IDs follow first packets: the reused-id connection is C3, the late verify's C4.
        #expect(r.exchanges.last?.steps.map { "\($0.kind.rawValue)@\($0.connection)" }
                == ["db:result@C3", "db:verify@C2", "db:verify reply@C2", "db:result reply@C3", "db:verify reply@C4"])
    }

    /// A second db:verify was asked while the result connection was open; its answer comes after
    /// that connection closed and the exchange was written: the answer lands on the exchange the
    /// report lists, once.
    @Test func answerAfterTheWriteLandsOnTheListedExchange() throws {
        let t = [Example.validated, Self.verifyC3, Self.closeA,
                 "3S> <db:verify from='a.example' to='b.example' id='s1' type='invalid'/>"].joined(separator: "\n")
        let r = try Engine.analyze(transcript: t)
        #expect(r.exchanges.count == 1)
        let x = try #require(r.exchanges.first)
        #expect(x.verifyType == "invalid")
        #expect(x.steps.map(\.kind) == [.resultRequest, .verifyRequest, .verifyReply, .resultReply, .verifyReply])
        #expect(x.steps.last?.connection == ConnectionID(3))
    }

    /// Feeds a transcript to an engine that is not finished: what the model holds mid-capture.
    static func running(_ transcript: String, retainHistory: Bool = true) throws -> Engine {
        var configuration = EngineConfiguration()
        configuration.retainHistory = retainHistory
        let engine = Engine(configuration: configuration)
        for (i, f) in try Transcript(transcript).frames.enumerated() {
            f.bytes.withUnsafeBytes { b in
                engine.process(b, linkType: 1, frame: FrameRef(input: 0, number: i + 1, time: f.time), wireLength: f.bytes.count)
            }
        }
        return engine
    }

    /// Offline, an exchange is written out once it is answered and verified, while its db:result's
    /// connection stays open (a long-lived connection would otherwise hold all it carried); a live
    /// run writes nothing.
    @Test func settledExchangeIsWrittenWhileItsConnectionStaysOpen() throws {
        let offline = try Self.running(Example.validated)
        #expect(offline.correlator.model.connection(ConnectionID(1)) != nil)
        #expect(offline.correlator.model.exchanges.archivedCount == 1)
        let live = try Self.running(Example.validated, retainHistory: false)
        #expect(live.correlator.model.exchanges.archivedCount == 0)
        #expect(live.correlator.model.exchanges.count == 1)
    }

    /// The exchange was written while connection 1 stays open; a late db:verify pages it back in.
    /// When connection 1 then closes, the paged-in exchange is not written a second time: the
    /// report lists it once, with the late answer.
    @Test func exchangePagedInWhileItsConnectionIsOpenIsListedOnce() throws {
        let t = [Example.validated, Self.verifyC3,
                 "3S> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>", Self.closeA].joined(separator: "\n")
        let r = try Engine.analyze(transcript: t)
        #expect(!r.violations.contains { $0.rule == "DB-CORR-1" }, "\(r.violations.map(\.message))")
        #expect(r.exchanges.count == 1)
        #expect(r.exchanges.map(\.steps.count) == [5])
    }
}
