import S2Dialback
import S2Model
import S2XMPP

/// TCP-1: stanzas flow only from initiator to acceptor unless XEP-0288 bidi was requested.
final class TCP1: Rule {
    /// Judges what the acceptor sends only.
    let interests: RuleInterests = RuleInterests.all.subtracting(.initiatorStanza)
    let description = RuleDescription(
        id: "TCP-1", title: "The acceptor sends stanzas on a connection without XEP-0288 bidi", severity: .high,
        source: "RFC3920 §4.2, §8.1; XEP-0220 §2.3; XEP-0288 §1–2.2",
        firing: [Example.validated + "\nS> ↓<message from='v@b.example' to='u@a.example'><body>back</body></message>"],
        quiet: [Example.clean,
                // Whether bidi was negotiated before the capture began is unknown.
                Example.midstream + "\nS> <message from='v@b.example' to='u@a.example'><body>back</body></message>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, e.direction == .serverToClient, el.isStanza, !c.bidi,
              ctx.canJudge(self, c, at: e.firstFrame) else { return }
        ctx.report(self, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                   "The acceptor sent a <\(el.local)/> back on the connection it accepted, but bidirectional use (XEP-0288 <bidi/>) was never requested; classic s2s needs a second connection for the reverse direction.",
                   evidence: el.render())
    }
}

/// TCP-2: nothing after one's own `</stream:stream>`.
final class TCP2: Rule {
    let description = RuleDescription(
        id: "TCP-2", title: "Data sent after the sender closed its stream", severity: .medium, source: "RFC6120 §4.4",
        firing: [Example.openA + "\nC> </stream:stream>\nC> ↓<message from='u@a.example' to='v@b.example'/>"],
        quiet: [Example.clean, Example.midstream + "\nC> <message from='u@a.example' to='v@b.example'/>\nC> </stream:stream>\nS> </stream:stream>\nclose"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, c) = input.event, case .dataAfterClose = e.kind else { return }
        ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                   "The \(e.direction.sideName) sent more data after its own </stream:stream>; a closed stream must stay silent.",
                   evidence: "data at stream offset \(e.startOffset) after the closing tag")
    }
}

/// TCP-3: TCP is torn down once both streams are closed, or after a stream error.
final class TCP3: Rule {
    let description = RuleDescription(
        id: "TCP-3", title: "TCP connection left open after both streams closed", severity: .low,
        source: "RFC3920 §4.1, §4.7.1; RFC6120 §4.4",
        firing: [Example.openA + "\nC> </stream:stream>\nS> ↓</stream:stream>\n+40\n2C> $HDR to='b.example' from='a.example'>",
                 // An idle timeout is the analyzer's decision, not a close: 700 s of an open socket.
                 Example.openA + "\nC> </stream:stream>\nS> ↓</stream:stream>\n+700\n2C> $HDR to='b.example' from='a.example'>"],
        quiet: [Example.clean,
                // The capture ends 10 s after both streams closed: the deadline had not passed.
                Example.openA + "\nC> </stream:stream>\nS> </stream:stream>\n+10\n2C> $HDR to='b.example' from='a.example'>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, c) = input.event, case .streamClosed = e.kind,
              c.streamClosed.clientToServer && c.streamClosed.serverToClient, !ctx.isAwaiting(self, on: c) else { return }
        ctx.expect(self, on: c, by: e.direction, actor: .acceptor, trigger: e.firstFrame, within: ctx.configuration.timers.close,
                   missing: ("Both XML streams were closed but the TCP connection stayed open longer than \(Int(ctx.configuration.timers.close)) s.",
                             "no FIN/RST within \(Int(ctx.configuration.timers.close)) s of the second </stream:stream>", nil)) { _ in .pending }
    }
}
