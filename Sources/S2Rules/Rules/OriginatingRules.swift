import S2Dialback
import S2Model
import S2XMPP

/// DB-RES-1: db:result carries from, to and a key.
final class DBRes1: Rule {
    let description = RuleDescription(
        id: "DB-RES-1", title: "db:result request without from/to or without a key", severity: .high,
        source: "XEP-0220 §2.1.1; RFC3920 §8.3 s4",
        firing: [Example.openA + "\nC> ↓<db:result from='a.example' to='b.example'/>",
                 Example.openA + "\nC> ↓<db:result to='b.example'>\(Example.key)</db:result>"],
        quiet: [Example.clean,
                // A key surrounded by whitespace is a key.
                Example.openA + "\nC> <db:result from='a.example' to='b.example'>\\x0a  \(Example.key)\\x0a</db:result>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .resultRequest(let x) = db else { return }
        var problems: [String] = []
        if (el[attribute: "from"] ?? "").isEmpty { problems.append("no 'from' (Sender Domain)") }
        if (el[attribute: "to"] ?? "").isEmpty { problems.append("no 'to' (Target Domain)") }
        if x?.key.isEmpty ?? el.trimmedText.isEmpty { problems.append("no key") }
        guard !problems.isEmpty else { return }
        ctx.report(self, c, e.direction, actor: .originating, frame: e.firstFrame,
                   "The originating server's db:result request has \(problems.joined(separator: " and ")).", evidence: el.render())
    }
}

/// DB-RES-2: the key depends on the RS's stream id: sent after the header, never reused.
final class DBRes2: Rule {
    let scope: RuleScope = .correlation
    let description = RuleDescription(
        id: "DB-RES-2", title: "Dialback key sent before the stream id, or reused across streams", severity: .high,
        source: "RFC3920 §8.1, §8.3 s4; XEP-0185 §2", observability: .crossConnection,
        firing: ["C> $HDR to='b.example' from='a.example'>\nC> ↓<db:result from='a.example' to='b.example'>\(Example.key)</db:result>",
                 Example.openA + "\n" + Example.resultA + "\n2C> $HDR to='b.example' from='a.example'>\n2S> $HDR from='b.example' to='a.example' id='s7'>\n2C> ↓<db:result from='a.example' to='b.example'>\(Example.key)</db:result>"],
        quiet: [Example.clean,
                // The response header (with the stream id) was sent before the capture began.
                Example.midstream + "\n" + Example.resultA])
    private var keys: DialbackKeyRegistry?
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .resultRequest(let x?) = db, !x.key.isEmpty else { return }
        if c.responseHeader == nil, ctx.canJudge(self, c, direction: .serverToClient, at: e.firstFrame) {
            // Without the handshake the header may have come before the capture began.
            guard c.handshakeSeen else { ctx.skip(description, c.id, e.firstFrame, .midstream); return }
            ctx.report(self, c, e.direction, actor: .originating, frame: e.firstFrame,
                       "The originating server sent its dialback key before the receiving server's stream header (and its stream id) arrived, so the key cannot depend on the stream id.",
                       evidence: el.render())
            return
        }
        let keys = keys ?? DialbackKeyRegistry(onDisk: ctx.model.keepsHistoryOnDisk)
        self.keys = keys
        guard let prev = keys.firstUse(recording: .init(key: x.key, streamID: x.streamID, pair: x.pair, connection: c.id)),
              prev.streamID != x.streamID || prev.pair != x.pair else { return }
        ctx.report(self, c, e.direction, actor: .originating, frame: e.firstFrame,
                   "The same dialback key was already sent on \(prev.connection) for \(prev.pair) with stream id '\(prev.streamID ?? "")'; a key bound to the stream id cannot repeat on stream '\(x.streamID ?? "")'.",
                   evidence: el.render())
    }
}

/// DB-RES-3: no stanzas before the pair is validated.
final class DBRes3: Rule {
    /// Judges what the initiator sends only.
    let interests: RuleInterests = RuleInterests.all.subtracting(.acceptorStanza)
    let description = RuleDescription(
        id: "DB-RES-3", title: "Stanzas sent before dialback validated the domain pair", severity: .high,
        source: "XEP-0220 §1.4, §2.1.1; RFC3920 §8.3 s10, §4.3",
        firing: [Example.openA + "\n" + Example.resultA + "\nC> ↓<message from='u@a.example' to='v@b.example' id='m1'><body>hi</body></message>",
                 // Piggybacking: a stanza for a pair whose own db:result is still pending.
                 Example.validated + "\nC> <db:result from='rooms.a.example' to='b.example'>\(Example.key)</db:result>\nC> ↓<message from='x@rooms.a.example' to='v@b.example'/>"],
        quiet: [Example.clean,
                Example.midstream + "\nC> <message from='u@a.example' to='v@b.example' id='m1'><body>hi</body></message>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, e.direction == .clientToServer, el.isStanza,
              case .beforeValidation(let pair)? = StanzaAuthorization.judged(self, el, c, e, ctx) else { return }
        ctx.report(self, c, e.direction, actor: .originating, frame: e.firstFrame,
                   c.validated.clientToServer.isEmpty
                       ? "The originating server sent a <\(el.local)/> before the receiving server validated any domain pair on this connection."
                       : "The originating server sent a <\(el.local)/> for \(pair) while its db:result for that pair was still unanswered.",
                   evidence: el.render())
    }
}

/// DB-RES-4: nothing for a pair after `type='invalid'` (and preferably nothing at all).
final class DBRes4: Rule {
    /// Judges what the initiator sends only.
    let interests: RuleInterests = RuleInterests.all.subtracting(.acceptorStanza)
    let description = RuleDescription(
        id: "DB-RES-4", title: "Stanzas sent after the dialback result was invalid", severity: .high, source: "XEP-0220 §2.1.1",
        firing: [Example.openA + "\n" + Example.resultA + "\nS> <db:result from='b.example' to='a.example' type='invalid'/>\nC> ↓<message from='u@a.example' to='v@b.example' id='m1'><body>hi</body></message>"],
        quiet: [Example.clean,
                // Bytes lost between the invalid answer and the stanza: a new request and its valid answer may be among them.
                Example.openA + "\n" + Example.resultA + "\nS> <db:result from='b.example' to='a.example' type='invalid'/>\nC~ <db:result from='a.example' to='b.example'>\(Example.key)</db:result>\nS> <presence from='v@b.example' to='u@a.example'/>\nC> <message from='u@a.example' to='v@b.example'/>\n" + Example.message])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, e.direction == .clientToServer, el.isStanza, !c.invalidated.clientToServer.isEmpty,
              let f = el.fromDomain, let t = el.toDomain, ctx.canJudge(self, c, at: e.firstFrame) else { return }
        let pair = DomainPair(sender: f, target: t)
        if c.invalidated.clientToServer.contains(pair) {
            ctx.report(self, c, e.direction, actor: .originating, frame: e.firstFrame,
                       "The originating server sent a <\(el.local)/> for \(pair) after the receiving server declared that pair invalid.",
                       evidence: el.render())
        } else if c.isValidated(pair) {
            ctx.report(self, severity: .low, c, e.direction, actor: .originating, frame: e.firstFrame,
                       "The originating server kept sending on a connection where another pair was declared invalid (the receiving server is expected to close it).",
                       evidence: el.render())
        }
    }
}

/// DB-RES-5: target multiplexing only toward peers that advertised dialback errors.
final class DBRes5: Rule {
    let description = RuleDescription(
        id: "DB-RES-5", title: "Target multiplexing without the dialback <errors/> feature", severity: .low, source: "XEP-0220 §2.6.2",
        firing: ["C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='s1'>\nS> <stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>\n" + Example.resultA + "\nC> ↓<db:result from='a.example' to='chat.b.example'>\(Example.key)</db:result>"],
        quiet: [Example.clean,
                // The same target in another case is not a new target.
                "C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='s1'>\nS> <stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>\n" + Example.resultA + "\nC> <db:result from='rooms.a.example' to='B.Example'>\(Example.key)</db:result>",
                Example.midstream + "\n" + Example.resultA + "\nC> <db:result from='a.example' to='chat.b.example'>\(Example.key)</db:result>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .resultRequest(let x?) = db, e.direction == .clientToServer, c.requestedTargets.count > 1,
              c.latestRequestAddedTarget, c.requestedTargets.contains(x.receiving),
              !c.acceptorAdvertisedDialbackErrors, ctx.canJudge(self, c, at: e.firstFrame) else { return }
        ctx.report(self, c, e.direction, actor: .originating, frame: e.firstFrame,
                   "The originating server multiplexes a new target domain '\(x.receiving)' on this stream although the receiving server did not advertise <dialback><errors/></dialback>.",
                   evidence: el.render())
    }
}
