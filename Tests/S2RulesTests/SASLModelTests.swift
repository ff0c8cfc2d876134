import S2Dialback
import S2Engine
import S2Model
import S2Report
import S2Rules
import Testing

/// The SASL part of the connection model: the authenticated domain, and stanzas judged against it.
struct SASLModelTests {
    static func run(_ steps: [String]) throws -> AnalysisReport {
        try Engine.analyze(transcript: steps.joined(separator: "\n"))
    }

    static let authenticated = [Example.saslOpen, Example.saslAuth, Example.saslSuccess, Example.saslRestartA, Example.saslRestartB]

    @Test func successRecordsTheNegotiationAndTheAuthenticatedDomain() throws {
        let r = try Self.run([Example.saslClean])
        let c = try #require(r.connections.first)
        #expect(c.sasl.count == 1)
        let n = try #require(c.sasl.first)
        #expect(n.mechanism == "EXTERNAL" && n.authzid == "a.example" && n.outcome == .success && n.domain == "a.example")
        #expect(n.initiating == "a.example" && n.receiving == "b.example" && n.offered == ["EXTERNAL"] && !n.overTLS)
        #expect(n.streamIDBefore == "s1" && n.streamIDAfter == "s2")
        #expect(n.authFrame.number < n.outcomeFrame!.number)
        // Nothing of dialback on it, and the message from the authenticated domain is fine.
        #expect(r.exchanges.isEmpty)
        #expect(!r.violations.contains { $0.rule.hasPrefix("STANZA-") || $0.rule.hasPrefix("DB-") }, "\(r.violations.map(\.rule))")
    }

    @Test func withoutAuthorizationIdentityTheStreamsFromIsAuthenticated() throws {
        let r = try Self.run([Example.saslOpen, "C> <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
                              Example.saslSuccess, Example.saslRestartA, Example.saslRestartB, Example.message])
        let n = try #require(r.connections.first?.sasl.first)
        #expect(n.authzid == nil && n.initialResponse == "=" && n.domain == "a.example")
        #expect(!r.violations.contains { $0.rule == "STANZA-ADDR-4" })
    }

    /// A stanza from another domain than SASL authenticated is spoofed, whatever the restarted
    /// header claims.
    @Test func stanzasAreJudgedAgainstTheAuthenticatedDomain() throws {
        let spoof = "C> <message from='mallory@evil.example' to='v@b.example' id='m2'><body>x</body></message>"
        let r = try Self.run(Self.authenticated + [spoof])
        #expect(r.violations.filter { $0.rule == "STANZA-ADDR-4" }.count == 1)
        let switched = try Self.run([Example.saslOpen, Example.saslAuth, Example.saslSuccess,
                                     "C> $HDR to='b.example' from='evil.example'>", Example.saslRestartB, spoof])
        #expect(switched.violations.contains { $0.rule == "SASL-8" })
        #expect(switched.violations.contains { $0.rule == "STANZA-ADDR-4" }, "the new 'from' is not authenticated")
    }

    /// A failed negotiation authenticates nothing: stanzas before dialback are DB-RES-3, and a
    /// dialback on the same stream (what Prosody and ejabberd do after a failed EXTERNAL) is judged as usual.
    @Test func failureAuthenticatesNothing() throws {
        let failure = "S> <failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"
        let r = try Self.run([Example.saslOpen, Example.saslAuth, failure, Example.message])
        #expect(r.connections.first?.sasl.first?.outcome == .failure && r.connections.first?.sasl.first?.condition == "not-authorized")
        #expect(r.violations.contains { $0.rule == "DB-RES-3" })
        let fallback = try Self.run([Example.saslOpen, Example.saslAuth, failure, Example.resultA, Example.verifyB, Example.validA, Example.message])
        #expect(fallback.exchanges.map(\.outcomeName) == ["valid"])
        #expect(!fallback.violations.contains { $0.severity >= .medium && !$0.rule.hasPrefix("SASL-1") }, "\(fallback.violations.map(\.rule))")
    }

    /// The JSON report carries the negotiation on its connection.
    @Test func jsonReportCarriesTheNegotiation() throws {
        let json = JSONReport.document(try Self.run([Example.saslClean]))
        #expect(json.contains("\"sasl\": [") && json.contains("\"mechanism\": \"EXTERNAL\"") && json.contains("\"domain\": \"a.example\""))
        #expect(json.contains("\"stream_id_after\": \"s2\""))
        let text = TextReport(color: false).render(try Self.run([Example.saslClean]))
        #expect(text.contains("1 SASL authentication (1 success, 0 failure, 0 aborted, 0 pending)"))
        #expect(text.contains("C1  a.example → b.example  EXTERNAL  success  authzid 'a.example'  without TLS"))
    }

    @Test func base64() {
        #expect(base64Bytes("YS5leGFtcGxl").map { String(decoding: $0, as: UTF8.self) } == "a.example")
        #expect(base64Bytes("YS5sYWI=").map { String(decoding: $0, as: UTF8.self) } == "a.lab")
        #expect(base64Bytes("") == [])
        for bad in ["a.example", "YS5sYWI", "YS5s=YWI", "YQ===", "Y!=="] { #expect(base64Bytes(bad) == nil, "\(bad)") }
    }
}
