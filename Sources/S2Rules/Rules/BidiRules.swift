import S2Dialback
import S2Model
import S2XMPP

/// BIDI-1: STARTTLS before `<bidi/>`.
final class Bidi1: Rule {
    let description = RuleDescription(
        id: "BIDI-1", title: "<bidi/> sent in plaintext before STARTTLS", severity: .low, source: "XEP-0288 §2.1",
        firing: ["C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='x1'>\nS> <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><bidi xmlns='urn:xmpp:features:bidi'/></stream:features>\nC> <bidi xmlns='urn:xmpp:bidi'/>\nC> ↓<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"],
        quiet: [Example.clean,
                // Without TLS at all there is nothing to complete first.
                "C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='x1'>\nS> <stream:features><bidi xmlns='urn:xmpp:features:bidi'/></stream:features>\nC> <bidi xmlns='urn:xmpp:bidi'/>\n" + Example.resultA])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, e.direction == .clientToServer, el.is("starttls", Namespace.tls), c.bidi else { return }
        ctx.report(self, c, e.direction, actor: .initiator, frame: e.firstFrame,
                   "The initiator requested <bidi/> before negotiating STARTTLS; XEP-0288 wants TLS completed first.", evidence: el.render())
    }
}

/// BIDI-2: on a bidi connection the acceptor sends only for reverse validated pairs, after authentication.
final class Bidi2: Rule {
    /// Judges what the acceptor sends only.
    let interests: RuleInterests = RuleInterests.all.subtracting(.initiatorStanza)
    let description = RuleDescription(
        id: "BIDI-2", title: "Acceptor sends stanzas on a bidi connection it is not authorized for", severity: .high,
        source: "XEP-0288 §2.2",
        firing: [Example.openA + "\nC> <bidi xmlns='urn:xmpp:bidi'/>\nS> ↓<message from='v@b.example' to='u@a.example'/>",
                 Example.openA + "\nC> <bidi xmlns='urn:xmpp:bidi'/>\n" + Example.resultA + "\n" + Example.verifyB + "\n" + Example.validA + "\nS> ↓<message from='v@chat.b.example' to='u@a.example'/>"],
        quiet: [Example.openA + "\nC> <bidi xmlns='urn:xmpp:bidi'/>\n" + Example.resultA + "\n" + Example.verifyB + "\n" + Example.validA + "\nS> <message from='v@b.example' to='u@a.example'/>",
                // XEP-0288's dialback example: the acceptor validates another of its domains on the same connection.
                Example.openA + "\nC> <bidi xmlns='urn:xmpp:bidi'/>\n" + Example.resultA + "\n" + Example.verifyB + "\n" + Example.validA + "\nS> <db:result from='chat.b.example' to='a.example'>\(Example.key)</db:result>\nC> <db:result from='a.example' to='chat.b.example' type='valid'/>\nS> <message from='v@chat.b.example' to='u@A.example'/>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, e.direction == .serverToClient, el.isStanza, c.bidi,
              ctx.canJudge(self, c, at: e.firstFrame) else { return }
        let f = el.fromDomain ?? "", t = el.toDomain ?? ""
        if c.saslSucceeded { return }
        let pair = DomainPair(sender: f, target: t)
        if c.validated.clientToServer.isEmpty && c.validated.serverToClient.isEmpty {
            ctx.report(self, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                       "The acceptor sent a <\(el.local)/> on the bidi connection before the initiator was authenticated.", evidence: el.render())
        } else if !c.validated.serverToClient.contains(pair) && !c.validated.clientToServer.contains(DomainPair(sender: t, target: f)) {
            ctx.report(self, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                       "The acceptor sent (\(f) → \(t)) on the bidi connection, which is not the reverse of a validated pair.", evidence: el.render())
        }
    }
}

/// BIDI-3: a key is never verified on the connection its db:result arrived on.
final class Bidi3: Rule {
    let description = RuleDescription(
        id: "BIDI-3", title: "Dialback key verified on the connection it arrived on", severity: .medium, source: "XEP-0288 §2.2",
        firing: [Example.openA + "\nC> <bidi xmlns='urn:xmpp:bidi'/>\n" + Example.resultA + "\nS> ↓<db:verify from='b.example' to='a.example' id='s1'>\(Example.key)</db:verify>"],
        quiet: [Example.clean,
                // The acceptor verifies a key that reached it on another connection.
                Example.openA + "\nC> <bidi xmlns='urn:xmpp:bidi'/>\n" + Example.resultA + "\nS> <db:verify from='b.example' to='c.example' id='x9'>0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef</db:verify>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, e.direction == .serverToClient, c.bidi, el.isDialback, el.local == "verify",
              el[attribute: "type"] == nil, c.pendingResults.clientToServer.values.contains(where: { $0.key == el.trimmedText }) else { return }
        ctx.report(self, c, e.direction, actor: .receiving, frame: e.firstFrame,
                   "The receiving server sends a db:verify on the very bidi connection that carried the db:result; the key must be verified over another connection.",
                   evidence: el.render())
    }
}
