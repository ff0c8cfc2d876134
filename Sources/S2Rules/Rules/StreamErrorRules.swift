import S2Dialback
import S2Model
import S2XMPP

let definedStreamErrors: Set<String> = [
    "bad-format", "bad-namespace-prefix", "conflict", "connection-timeout", "host-gone", "host-unknown",
    "improper-addressing", "internal-server-error", "invalid-from", "invalid-namespace", "invalid-xml",
    "not-authorized", "not-well-formed", "policy-violation", "remote-connection-failed", "reset",
    "resource-constraint", "restricted-xml", "see-other-host", "system-shutdown", "undefined-condition",
    "unsupported-encoding", "unsupported-feature", "unsupported-stanza-type", "unsupported-version",
    // RFC 3920 only:
    "xml-not-well-formed", "invalid-id",
]

/// STREAM-ERR-1: stream errors are `<error/>` in the streams namespace.
final class StreamErr1: Rule {
    let description = RuleDescription(
        id: "STREAM-ERR-1", title: "Stream error not qualified by the streams namespace", severity: .medium,
        source: "RFC3920 §4.7, §11.2.1; RFC6120 §4.9.2",
        firing: [Example.openA + "\nS> ↓<error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>"],
        quiet: [Example.openA + "\nS> <stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
                Example.midstream + "\nS> <error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, el.local == "error", el.namespace != Namespace.streams,
              el.children.contains(where: { $0.namespace == Namespace.streamErrors }),
              ctx.canJudge(self, c, direction: e.direction, at: e.firstFrame) else { return }
        ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                   "The \(e.direction.sideName) sent a stream error as <error/> in '\(el.namespace)' instead of <stream:error/>.",
                   evidence: el.render())
    }
}

/// STREAM-ERR-2: a stream error holds one defined condition in the xmpp-streams namespace.
final class StreamErr2: Rule {
    let description = RuleDescription(
        id: "STREAM-ERR-2", title: "Stream error without a defined condition element", severity: .medium,
        source: "RFC3920 §4.7.2; RFC6120 §4.9.2",
        firing: [Example.openA + "\nS> ↓<stream:error>Invalid XML</stream:error>",
                 Example.openA + "\nS> ↓<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></stream:error>"],
        quiet: [Example.openA + "\nS> <stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no</text></stream:error>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, el.isStreamError else { return }
        let conditions = el.children.filter { $0.namespace == Namespace.streamErrors && $0.local != "text" }
        if conditions.isEmpty {
            ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                       "The \(e.direction.sideName)'s <stream:error/> has no condition element in urn:ietf:params:xml:ns:xmpp-streams.",
                       evidence: el.render())
        } else if conditions.count > 1 {
            ctx.report(self, severity: .low, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                       "The \(e.direction.sideName)'s <stream:error/> carries \(conditions.count) defined conditions; exactly one is expected.",
                       evidence: el.render())
        }
    }
}

/// STREAM-ERR-3: the condition is one of the defined ones.
final class StreamErr3: Rule {
    let description = RuleDescription(
        id: "STREAM-ERR-3", title: "Undefined stream error condition", severity: .low,
        source: "RFC6120 §4.9.3; RFC3920 §4.7.3",
        firing: [Example.openA + "\nS> ↓<stream:error><go-away xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"],
        quiet: [Example.openA + "\nS> <stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, el.isStreamError, let cond = el.streamErrorCondition else { return }
        if !definedStreamErrors.contains(cond) {
            ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                       "<\(cond)/> is not a defined stream error condition.", evidence: el.render())
        } else if cond == "xml-not-well-formed" {
            ctx.report(self, severity: .info, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                       "<xml-not-well-formed/> is the RFC 3920 name; RFC 6120 renamed it <not-well-formed/>.", evidence: el.render())
        }
    }
}

/// STREAM-ERR-4: after a stream error the sender closes at once.
final class StreamErr4: Rule {
    let description = RuleDescription(
        id: "STREAM-ERR-4", title: "Sender continues after its own stream error", severity: .medium,
        source: "RFC3920 §4.7.1; RFC6120 §4.9.1.1",
        firing: [Example.openA + "\nS> <stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\nS> ↓<stream:features/>"],
        quiet: [Example.openA + "\nS> <stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\nS> </stream:stream>\nclose",
                // The capture ends 2 s after the error: the close was not yet due.
                Example.openA + "\nS> <stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\n+2\nC> </stream:stream>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, el.isStreamError, c.streamErrorFrame[e.direction] == e.firstFrame else { return }
        let d = e.direction
        ctx.expect(self, on: c, by: d, actor: d.senderActor, trigger: e.firstFrame, within: ctx.configuration.timers.close,
                   closeIsEnough: true,
                   missing: ("The \(d.sideName) sent a stream error but did not close its stream and the connection.", el.render(), nil)) { x in
            guard x.direction == d else { return .pending }
            switch x.kind {
            case .streamClosed: return .satisfied
            case .element(let next):
                return .violated(severity: nil, message: "The \(d.sideName) sent <\(next.qualifiedName)/> after its own stream error; it must close the stream at once.",
                                 evidence: next.render(), frame: x.firstFrame)
            default: return .pending
            }
        }
    }
}

/// STREAM-ERR-5: the receiver of a stream error closes its own stream.
final class StreamErr5: Rule {
    let interests: RuleInterests = .all
    let description = RuleDescription(
        id: "STREAM-ERR-5", title: "Receiver of a stream error keeps sending", severity: .low, source: "RFC6120 §4.9.1.1",
        firing: [Example.openA + "\nS> <stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\nC> ↓<message from='u@a.example' to='v@b.example' id='m1'><body>hi</body></message>"],
        quiet: [Example.openA + "\nS> <stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\nC> </stream:stream>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, el.isStanza || el.isDialback,
              c.streamError[e.direction.reversed] != nil, !c.streamClosed[e.direction],
              let errFrame = c.streamErrorFrame[e.direction.reversed], errFrame.time < e.firstFrame.time else { return }
        ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                   "The \(e.direction.sideName) kept sending (<\(el.qualifiedName)/>) after it received a stream error; it should close its stream.",
                   evidence: el.render())
    }
}

/// STREAM-ERR-6: an error during setup still comes after the acceptor's own header.
final class StreamErr6: Rule {
    let description = RuleDescription(
        id: "STREAM-ERR-6", title: "Stream error sent before the acceptor's stream header", severity: .medium,
        source: "RFC3920 §4.7.1; RFC6120 §4.9.1.2–4.9.1.3",
        firing: ["C> $HDR to='b.example' from='a.example'>\nS> ↓<stream:error xmlns:stream='http://etherx.jabber.org/streams'><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"],
        quiet: ["C> $HDR to='nope.example' from='a.example'>\nS> $HDR from='b.example' id='x1'>\nS> <stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        if let (e, h, c) = input.header, e.direction == .serverToClient, h.local == "error", h.namespace == Namespace.streams {
            ctx.report(self, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                       "The acceptor's first bytes are a <stream:error/> with no stream header of its own before it.",
                       evidence: h.render())
        }
        if let (e, el, c, _) = input.element, e.direction == .serverToClient, el.isStreamError, el.streamErrorCondition == "host-unknown",
           let to = c.initialHeader?.to, let from = c.responseHeader?.from, normalizedDomain(to) == normalizedDomain(from), !to.isEmpty,
           c.elementsSinceHeader.serverToClient == 1 {
            ctx.report(self, severity: .low, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                       "The acceptor rejected '\(to)' as unknown but its header's 'from' echoes that very domain; it should name its own domain.",
                       evidence: el.render())
        }
    }
}
