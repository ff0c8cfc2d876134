import S2Dialback
import S2Model
import S2XMPP

/// STREAM-VER-1: a 1.0 initiator says `version='1.0'`.
final class StreamVer1: Rule {
    let description = RuleDescription(
        id: "STREAM-VER-1", title: "Initial header without version (legacy server)", severity: .info,
        source: "RFC3920 §4.4.1, §5.1; RFC6120 §4.7.5",
        firing: ["C> ↓<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='b.example'>"],
        quiet: [Example.clean,
                // The acceptor's header has no version; the initiator's does.
                "C> $HDR to='b.example' from='a.example'>\nS> <stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='b.example' id='x1'>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, h, c) = input.header, e.direction == .clientToServer, h.isStreamRoot, h.version == nil else { return }
        ctx.report(self, c, e.direction, actor: .initiator, frame: e.firstFrame,
                   "The initial stream header has no 'version': a pre-XMPP-1.0 (dialback-only) initiator.", evidence: h.render())
    }
}

/// STREAM-VER-2: the response version is not higher than the initial one.
final class StreamVer2: Rule {
    let description = RuleDescription(
        id: "STREAM-VER-2", title: "Response version higher than the initiator's", severity: .low,
        source: "RFC3920 §4.4.1; RFC6120 §4.7.5",
        firing: ["C> <stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='b.example'>\nS> ↓$HDR from='b.example' id='x1'>"],
        quiet: [Example.clean,
                // Both sides legacy (no version): equal, not higher.
                "C> <stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='b.example'>\nS> <stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='b.example' id='x1'>"])
    static func parse(_ v: String?) -> (Int, Int)? {
        guard let v else { return (0, 9) }
        let p = v.split(separator: ".")
        guard p.count == 2, let a = Int(p[0]), let b = Int(p[1]) else { return nil }
        return (a, b)
    }
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        if let (e, h, c) = input.header, e.direction == .serverToClient, h.isStreamRoot, let ih = c.initialHeader {
            guard let r = StreamVer2.parse(h.version), let i = StreamVer2.parse(ih.version), r > i else { return }
            ctx.report(self, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                       "The response header says version '\(h.version ?? "")' although the initiator offered \(ih.version.map { "'\($0)'" } ?? "no version"); the response must carry the lower of the two.",
                       evidence: h.render())
        }
        if let (e, el, c, _) = input.element, e.direction == .clientToServer, el.is("starttls", Namespace.tls),
           c.responseHeader != nil, c.responseHeader?.version == nil {
            ctx.report(self, severity: .info, c, e.direction, actor: .initiator, frame: e.firstFrame,
                       "The initiator sent <starttls/> to a version-less (pre-1.0) responder (Prosody does this when encryption is required).",
                       evidence: el.render())
        }
    }
}

/// STREAM-FEAT-1: after a 1.0 header the acceptor sends `<stream:features/>` first.
final class StreamFeat1: Rule {
    /// Judges what the acceptor sends only.
    let interests: RuleInterests = RuleInterests.all.subtracting(.initiatorStanza)
    let description = RuleDescription(
        id: "STREAM-FEAT-1", title: "No <stream:features/> after the response header of a 1.0 stream", severity: .high,
        source: "RFC3920 §4.6; RFC6120 §4.3.2",
        firing: ["C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='x1'>\nS> ↓<db:result from='b.example' to='a.example' type='valid'/>"],
        quiet: [Example.clean,
                // A pre-1.0 acceptor answers without version and sends no features by design (RFC 3920 §4.4.1).
                "C> $HDR to='b.example' from='a.example'>\nS> <stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='b.example' id='x1'>\n" + Example.resultA + "\nS> <db:result from='b.example' to='a.example' type='valid'/>",
                // Bytes lost right after the header: the features may have been among them.
                "C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='x1'>\nS~ <stream:features/>\nC> <presence/>\nS> <db:result from='b.example' to='a.example' type='valid'/>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, e.direction == .serverToClient,
              c.elementsSinceHeader.serverToClient == 1, c.initialHeader?.version == "1.0", c.responseHeader?.isStreamRoot == true,
              let v = StreamVer2.parse(c.responseHeader?.version), v >= (1, 0),
              ctx.canJudge(self, c, direction: .serverToClient, at: e.firstFrame) else { return }
        if el.is("features", Namespace.streams) || el.isStreamError { return }
        ctx.report(self, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                   "The initiator opened a version 1.0 stream, but the acceptor's first element after its header is <\(el.qualifiedName)/>, not <stream:features/>.",
                   evidence: el.render())
    }
}

/// STREAM-FEAT-2: a 1.0 acceptor offers STARTTLS before TLS.
final class StreamFeat2: Rule {
    let description = RuleDescription(
        id: "STREAM-FEAT-2", title: "Pre-TLS features without <starttls/>", severity: .low,
        source: "RFC3920 §5.1, §14.4; RFC6120 §13.8",
        firing: ["C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='s1'>\nS> ↓<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>"],
        quiet: ["C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='x1'>\nS> <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>",
                // Picked up mid-stream, then a restart: whether TLS or SASL came before is unknown.
                Example.midstream + "\nC> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='x2'>\nS> <stream:features/>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, e.direction == .serverToClient, el.is("features", Namespace.streams),
              !c.tls, !c.saslSucceeded, c.initialHeader?.version == "1.0", el.child("starttls", namespace: Namespace.tls) == nil,
              ctx.canJudge(self, c, at: e.firstFrame) else { return }
        ctx.report(self, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                   "The acceptor's pre-TLS stream features do not offer STARTTLS, which every XMPP 1.0 server must implement.",
                   evidence: el.render())
    }
}

/// TLS-1: no plaintext after `<proceed/>`; the initiator's next bytes are a TLS record.
final class TLS1: Rule {
    let description = RuleDescription(
        id: "TLS-1", title: "Plaintext after <proceed/> (STARTTLS injection or stripping indicator)", severity: .high,
        source: "RFC3920 §5.1; RFC6120 §5.3.3, §5.4.3.3",
        firing: ["C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='x1'>\nS> <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>\nC> <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\nS> <proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\nC> ↓<db:result from='a.example' to='b.example'>k</db:result>"],
        quiet: ["C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='x1'>\nS> <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>\nC> <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\nS> <proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\nC> \\x16\\x03\\x01\\x00\\x05hello"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        // Only after STARTTLS: a direction that starts with TLS (direct TLS) has no <proceed/> to follow.
        guard let (e, c) = input.event, case .tlsStarted(let looks) = e.kind, !looks,
              c.hasHeader(e.direction) || c.hasHeader(e.direction.reversed),
              // After lost bytes the first bytes seen are not the first bytes sent.
              !c.damaged[e.direction] else { return }
        ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                   "After <proceed/> the \(e.direction.sideName)'s next bytes are not a TLS record: plaintext continued where TLS must start.",
                   evidence: "bytes at stream offset \(e.startOffset) do not start with a TLS record header (0x16 0x03)")
    }
}

/// TLS-2: a TLS `<failure/>` ends the stream and the connection.
final class TLS2: Rule {
    let description = RuleDescription(
        id: "TLS-2", title: "Stream continues after a STARTTLS <failure/>", severity: .medium,
        source: "RFC3920 §5.1; RFC6120 §5.4.2.2",
        firing: ["C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='x1'>\nS> <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>\nC> <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\nS> <failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\nS> ↓<stream:features/>"],
        quiet: ["C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='x1'>\nS> <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>\nC> <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\nS> <failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\nS> </stream:stream>\nclose"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, e.direction == .serverToClient, el.is("failure", Namespace.tls) else { return }
        ctx.expect(self, on: c, by: .serverToClient, actor: .acceptor, trigger: e.firstFrame, within: ctx.configuration.timers.react,
                   missing: ("The acceptor sent a STARTTLS <failure/> but did not close the stream and connection.", el.render(), nil)) { x in
            guard x.direction == .serverToClient else { return .pending }
            switch x.kind {
            case .streamClosed: return .satisfied
            case .element(let next):
                return .violated(severity: nil, message: "The acceptor kept the stream after a STARTTLS <failure/> (sent <\(next.qualifiedName)/>); it must close it.",
                                 evidence: next.render(), frame: x.firstFrame)
            default: return .pending
            }
        }
    }
}

/// TLS-3: with `<starttls><required/></starttls>` offered, no plaintext dialback or stanzas.
final class TLS3: Rule {
    let interests: RuleInterests = .all
    let description = RuleDescription(
        id: "TLS-3", title: "Plaintext dialback or stanzas although STARTTLS was required", severity: .medium,
        source: "RFC6120 §4.3.1, §5.3.1; XEP-0220 §2.5",
        firing: ["C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='s1'>\nS> <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>\nC> ↓<db:result from='a.example' to='b.example'>\(Example.key)</db:result>"],
        quiet: [Example.clean,
                // STARTTLS first: the dialback then runs inside TLS.
                "C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='s1'>\nS> <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>\nC> <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\nS> <proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\nC> \\x16\\x03\\x01\\x00\\x05hello"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, !c.tls, c.startTLSRequired else { return }
        if e.direction == .clientToServer, (el.isDialback && el[attribute: "type"] == nil) || el.isStanza {
            ctx.report(self, c, e.direction, actor: .initiator, frame: e.firstFrame,
                       "The acceptor marked STARTTLS as required, but the initiator sent <\(el.qualifiedName)/> in plaintext.",
                       evidence: el.render())
        }
        if e.direction == .serverToClient, case .resultReply(_, let type, _) = db, type == "valid" {
            ctx.report(self, severity: .high, c, e.direction, actor: .receiving, frame: e.firstFrame,
                       "The receiving server required STARTTLS yet validated a plaintext dialback request (it should answer <policy-violation/>).",
                       evidence: el.render())
        }
    }
}
