import S2Dialback
import S2Model
import S2XMPP

// SASL on s2s streams (RFC 6120 §6; SASL EXTERNAL with certificates, XEP-0178). The rows are
// in docs/RULES-EXTRA.md. The stream id of the restarted stream is STREAM-HDR-9's; stanzas on
// a SASL-authenticated stream are judged against the authenticated domain by STANZA-ADDR-4.

extension Example {
    /// `a.example` base64-encoded (the authorization identity XEP-0178 recommends).
    public static let authzidA = "YS5leGFtcGxl"
    public static let saslOpen = """
        C> $HDR to='b.example' from='a.example'>
        S> $HDR from='b.example' to='a.example' id='s1'>
        S> <stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms></stream:features>
        """
    public static let saslAuth = "C> <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>\(authzidA)</auth>"
    public static let saslSuccess = "S> <success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
    public static let saslRestartA = "C> $HDR to='b.example' from='a.example'>"
    public static let saslRestartB = "S> $HDR from='b.example' to='a.example' id='s2'>\nS> <stream:features/>"
    /// SASL EXTERNAL from a.example to b.example, the restart, a message and the close.
    public static let saslClean = [saslOpen, saslAuth, saslSuccess, saslRestartA, saslRestartB, message,
                            "C> </stream:stream>\nS> </stream:stream>\nclose"].joined(separator: "\n")
    /// The same with STARTTLS offered beside EXTERNAL before TLS.
    public static let saslOfferedWithStartTLS = """
        C> $HDR to='b.example' from='a.example'>
        S> $HDR from='b.example' to='a.example' id='s1'>
        S> <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms></stream:features>
        """
}

/// SASL-1: EXTERNAL is offered only once TLS is in place.
final class SASL1: Rule {
    let description = RuleDescription(
        id: "SASL-1", title: "SASL EXTERNAL offered before TLS", severity: .medium,
        source: "RFC6120 §6.3.4, §5.3.1; XEP-0178 §3",
        firing: [Example.saslOfferedWithStartTLS.replacingOccurrences(of: "S> <stream:features>", with: "S> ↓<stream:features>"),
                 Example.saslOpen.replacingOccurrences(of: "S> <stream:features>", with: "S> ↓<stream:features>")],
        quiet: [Example.clean,
                "C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='s1'>\nS> <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, e.direction == .serverToClient, !c.tls, !c.damaged[.serverToClient],
              el.local == "features", el.namespace == Namespace.streams, c.offeredMechanisms.contains("EXTERNAL") else { return }
        let withTLS = el.child("starttls", namespace: Namespace.tls) != nil
        ctx.report(self, severity: withTLS ? .medium : .low, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                   withTLS
                       ? "The acceptor offers SASL EXTERNAL on the plaintext stream, beside STARTTLS: EXTERNAL rests on the TLS certificate, so it must not be offered before TLS is negotiated."
                       : "The acceptor offers SASL EXTERNAL on a stream without TLS: on s2s EXTERNAL authenticates the TLS certificate, which a plaintext stream does not have.",
                   evidence: el.render())
    }
}

/// The first event of `d` after SASL success that is not the new stream header RFC 6120 §6.4.6 demands.
private func notARestart(_ input: RuleInput, _ d: Direction) -> (XMPPEvent, ConnectionModel, String)? {
    guard let (e, c) = input.event, e.direction == d, c.firstAfterSASLSuccess, !c.damaged[d] else { return nil }
    switch e.kind {
    case .streamOpened(let h) where h.isStreamRoot: return nil
    case .streamOpened(let h): return (e, c, h.render())
    case .notWellFormed: return (e, c, "</stream:stream> or other data that is not a stream header (not well-formed as a new stream)")
    case .element(let el): return (e, c, el.render())
    case .streamClosed: return (e, c, "</stream:stream>")
    default: return nil
    }
}

/// SASL-2: after `<success/>` the initiator restarts the stream at once.
final class SASL2: Rule {
    let description = RuleDescription(
        id: "SASL-2", title: "Initiator does not restart the stream after SASL success", severity: .medium,
        source: "RFC6120 §6.4.6, §4.3.3",
        firing: [[Example.saslOpen, Example.saslAuth, Example.saslSuccess, Example.message.replacingOccurrences(of: "C> ", with: "C> ↓")].joined(separator: "\n"),
                 [Example.saslOpen, Example.saslAuth, Example.saslSuccess, "C> ↓</stream:stream>"].joined(separator: "\n")],
        quiet: [Example.saslClean,
                // A stanza after a <failure/> is not on a replaced stream (it is DB-RES-3's).
                [Example.saslOpen, Example.saslAuth, "S> <failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>",
                 Example.message].joined(separator: "\n")])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, c, what) = notARestart(input, .clientToServer) else { return }
        ctx.report(self, c, e.direction, actor: .initiator, frame: e.firstFrame,
                   "After <success/> the initiator sent something other than a new stream header; RFC 6120 §6.4.6 replaces the stream on success, so the initiator must open a new one first.",
                   evidence: what)
    }
}

/// SASL-3: after `<success/>` the acceptor sends nothing but its new response header.
final class SASL3: Rule {
    let description = RuleDescription(
        id: "SASL-3", title: "Acceptor sends on the replaced stream after SASL success", severity: .medium,
        source: "RFC6120 §6.4.6, §4.3.3",
        firing: [[Example.saslOpen, Example.saslAuth, Example.saslSuccess, Example.saslRestartA,
                  "S> ↓<message from='v@b.example' to='u@a.example'/>"].joined(separator: "\n")],
        quiet: [Example.saslClean,
                // The acceptor answers the restart with its new header before anything else.
                [Example.saslOpen, Example.saslAuth, Example.saslSuccess, Example.saslRestartA, Example.saslRestartB,
                 "S> <message from='v@b.example' to='u@a.example'/>"].joined(separator: "\n")])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, c, what) = notARestart(input, .serverToClient) else { return }
        ctx.report(self, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                   "After its <success/> the acceptor sent something other than the new response stream header; the old stream is replaced and a new header (with a new stream id) must come first.",
                   evidence: what)
    }
}

/// SASL-4: a `<failure/>` names one defined SASL condition.
final class SASL4: Rule {
    let description = RuleDescription(
        id: "SASL-4", title: "SASL <failure/> without a defined condition", severity: .low,
        source: "RFC6120 §6.4.5, §6.5",
        firing: [[Example.saslOpen, Example.saslAuth, "S> ↓<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"].joined(separator: "\n"),
                 [Example.saslOpen, Example.saslAuth, "S> ↓<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><bad-certificate/></failure>"].joined(separator: "\n")],
        quiet: [[Example.saslOpen, Example.saslAuth,
                 "S> <failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text xml:lang='en'>self signed certificate</text></failure>"].joined(separator: "\n")])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, e.direction == .serverToClient, el.is("failure", Namespace.sasl) else { return }
        let conditions = el.children.filter { $0.namespace == Namespace.sasl && $0.local != "text" }.map(\.local)
        guard conditions.count != 1 || !SASLCondition.defined.contains(conditions[0]) else { return }
        ctx.report(self, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                   conditions.isEmpty
                       ? "A SASL <failure/> carries no condition; it must name one of the conditions of RFC 6120 §6.5."
                       : "A SASL <failure/> names \(conditions.map { "<\($0)/>" }.joined(separator: ", ")), not exactly one condition of RFC 6120 §6.5.",
                   evidence: el.render())
    }
}

/// SASL-5: `<abort/>` is answered with `<failure><aborted/></failure>`.
final class SASL5: Rule {
    let description = RuleDescription(
        id: "SASL-5", title: "SASL <abort/> not answered with <aborted/>", severity: .low,
        source: "RFC6120 §6.4.4",
        firing: [[Example.saslOpen, Example.saslAuth, "C> <abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
                  "S> ↓<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"].joined(separator: "\n"),
                 [Example.saslOpen, Example.saslAuth, "C> ↓<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", "+15", Example.message].joined(separator: "\n")],
        quiet: [[Example.saslOpen, Example.saslAuth, "C> <abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
                 "S> <failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><aborted/></failure>"].joined(separator: "\n")])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, e.direction == .clientToServer, el.is("abort", Namespace.sasl) else { return }
        ctx.expect(self, on: c, by: .serverToClient, actor: .acceptor, trigger: e.firstFrame, within: ctx.configuration.timers.react,
                   missing: ("The acceptor did not answer the initiator's SASL <abort/> with <failure><aborted/></failure>.",
                             "no <failure><aborted/></failure> within \(Int(ctx.configuration.timers.react)) s of frame \(e.firstFrame.number)", nil)) { r in
            guard r.direction == .serverToClient, case .element(let x) = r.kind else { return .pending }
            if x.is("failure", Namespace.sasl), x.child("aborted", namespace: Namespace.sasl) != nil { return .satisfied }
            return .violated(severity: nil, message: "The acceptor answered the initiator's SASL <abort/> with something other than <failure><aborted/></failure>.",
                             evidence: x.render(), frame: r.firstFrame)
        }
    }
}

/// SASL-6: the initial response is base64, or "=" when empty.
final class SASL6: Rule {
    let description = RuleDescription(
        id: "SASL-6", title: "SASL data that is not base64", severity: .low,
        source: "RFC6120 §6.4.2, §6.4.3",
        firing: [[Example.saslOpen, "C> ↓<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>a.example</auth>"].joined(separator: "\n")],
        quiet: [Example.saslClean,
                [Example.saslOpen, "C> <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>"].joined(separator: "\n")])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, e.direction == .clientToServer, el.namespace == Namespace.sasl,
              el.local == "auth" || el.local == "response" else { return }
        let text = el.trimmedText
        guard !text.isEmpty, text != "=", base64Bytes(text) == nil else { return }
        ctx.report(self, c, e.direction, actor: .initiator, frame: e.firstFrame,
                   "The character data of the SASL <\(el.local)/> is not base64 (RFC 4648); an empty response must be sent as '='. The acceptor should answer <incorrect-encoding/>.",
                   evidence: el.render())
    }
}

/// SASL-7: on s2s the authorization identity is a bare domain.
final class SASL7: Rule {
    let description = RuleDescription(
        id: "SASL-7", title: "s2s SASL authorization identity that is not a domain", severity: .medium,
        source: "RFC3920 §6.1 rule 7; RFC6120 §6.3.8; XEP-0178 §3",
        firing: [[Example.saslOpen, "C> ↓<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>dUBhLmV4YW1wbGU=</auth>"].joined(separator: "\n")],
        quiet: [Example.saslClean,
                // A subdomain is still a domain (conference.a.example).
                [Example.saslOpen, "C> <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>Y29uZmVyZW5jZS5hLmV4YW1wbGU=</auth>"].joined(separator: "\n")])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, e.direction == .clientToServer, el.is("auth", Namespace.sasl),
              let n = c.sasl.last, n.authFrame == e.firstFrame, let id = n.authzid, !id.isEmpty,
              id.contains("@") || id.contains("/") || id.unicodeScalars.contains(where: { $0.value < 0x21 }) else { return }
        ctx.report(self, c, e.direction, actor: .initiator, frame: e.firstFrame,
                   "The initiator asks to be authorized as '\(id)'; a server authenticates as a domain (no localpart, no resource).",
                   evidence: el.render())
    }
}

/// SASL-8: after SASL success the new stream comes from the authenticated domain.
final class SASL8: Rule {
    let description = RuleDescription(
        id: "SASL-8", title: "Restarted stream claims another domain than SASL authenticated", severity: .high,
        source: "RFC6120 §6.4.6, §4.7.1; XEP-0178 §3",
        firing: [[Example.saslOpen, Example.saslAuth, Example.saslSuccess, "C> ↓$HDR to='b.example' from='evil.example'>"].joined(separator: "\n")],
        quiet: [Example.saslClean,
                // Domains compare case-insensitively.
                [Example.saslOpen, Example.saslAuth, Example.saslSuccess, "C> $HDR to='b.example' from='A.Example'>", Example.saslRestartB].joined(separator: "\n")])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, h, c) = input.header, e.direction == .clientToServer, c.firstAfterSASLSuccess, h.isStreamRoot,
              let domain = c.saslDomain, let from = h.from, normalizedDomain(from) != normalizedDomain(domain) else { return }
        ctx.report(self, c, e.direction, actor: .initiator, frame: e.firstFrame,
                   "SASL authenticated '\(domain)', but the restarted stream says from='\(from)'; stanzas on it are judged against '\(domain)'.",
                   evidence: h.render())
    }
}
