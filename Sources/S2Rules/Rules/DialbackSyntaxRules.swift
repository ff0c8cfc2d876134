import S2Dialback
import S2Model
import S2XMPP

/// DB-NS-1: dialback elements are in `jabber:server:dialback`, declared on the sender's header.
final class DBNS1: Rule {
    let description = RuleDescription(
        id: "DB-NS-1", title: "Dialback prefix bound to a wrong namespace or undeclared", severity: .high,
        source: "RFC3920 §11.2.3, §4.7.3; XEP-0220 §2, §2.4.1",
        firing: ["C> ↓<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialbackX' to='b.example' from='a.example' version='1.0'>",
                 "C> <stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='b.example' from='a.example' version='1.0'>\nS> $HDR from='b.example' id='s1'>\nC> ↓<db:result from='a.example' to='b.example'>k</db:result>"],
        quiet: [Example.clean,
                // The header that declared 'db' was before the capture.
                Example.midstream + "\nC> <db:result from='a.example' to='chat.b.example'>k</db:result>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        if let (e, h, c) = input.header, h.isStreamRoot, let uri = h.namespace(forPrefix: "db"), uri != Namespace.dialback {
            ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                       "The \(e.direction.sideName)'s header binds the dialback prefix 'db' to '\(uri)' instead of 'jabber:server:dialback'.",
                       evidence: h.render())
        }
        if let (e, c) = input.event, case .notWellFormed(let code, _, _) = e.kind, code == 27,
           c.header(e.direction)?.namespace(forPrefix: "db") == nil {
            // expat's "unbound prefix": typically db:result without xmlns:db in scope.
            ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                       "The \(e.direction.sideName) used a namespace prefix (typically 'db:') that its stream header never declared.",
                       evidence: "unbound prefix at stream offset \(e.startOffset)")
        }
    }
}

/// DB-NS-2: a header with a wrong dialback namespace is answered with `<invalid-namespace/>`.
final class DBNS2: Rule {
    static let badHeader = "C> <stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialbackX' to='b.example' from='a.example' version='1.0'>\nS> $HDR from='b.example' id='s1'>\nS> <stream:features/>"
    let description = RuleDescription(
        id: "DB-NS-2", title: "Receiver accepts a header with a wrong dialback namespace", severity: .medium,
        source: "RFC3920 §8.3 s2, s3, s6, s7, §4.7.3",
        firing: [badHeader + "\nC> <db:result from='a.example' to='b.example'>k</db:result>\nS> ↓<db:result from='b.example' to='a.example' type='valid'/>"],
        quiet: ["C> <stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialbackX' to='b.example' from='a.example' version='1.0'>\nS> $HDR from='b.example' id='s1'>\nS> <stream:error><invalid-namespace xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
                // The features answer the header; the stream then ends before anything acted on the namespace.
                badHeader + "\nC> </stream:stream>\nS> </stream:stream>\nclose"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, h, c) = input.header, h.isStreamRoot, let uri = h.namespace(forPrefix: "db"), uri != Namespace.dialback else { return }
        let reactor = e.direction.reversed
        let what = "a header binding 'db' to '\(uri)'"
        let keep = "The \(reactor.sideName) went on with the stream after \(what) instead of answering <invalid-namespace/> and closing."
        ctx.expect(self, on: c, by: reactor, actor: reactor.senderActor, trigger: e.firstFrame, within: ctx.configuration.timers.react,
                   missing: (keep, "no <invalid-namespace/> within \(Int(ctx.configuration.timers.react)) s of frame \(e.firstFrame.number)", nil)) { r in
            guard r.direction == reactor else { return .pending }
            switch r.kind {
            case .element(let el) where el.isStreamError:
                let cond = el.streamErrorCondition ?? "?"
                return cond == "invalid-namespace" ? .satisfied
                    : .violated(severity: .info, message: "The \(reactor.sideName) answered \(what) with <\(cond)/> instead of <invalid-namespace/>.",
                                evidence: el.render(), frame: r.firstFrame)
            // Features belong to the header's answer; going on means acting on dialback or stanzas.
            case .element(let el) where el.is("features", Namespace.streams): return .pending
            case .element(let el): return .violated(severity: nil, message: keep, evidence: el.render(), frame: r.firstFrame)
            case .streamClosed: return .satisfied
            default: return .pending
            }
        }
    }
}

/// DB-NS-3: dialback elements are prefixed with the prefix declared on the sender's header.
final class DBNS3: Rule {
    let description = RuleDescription(
        id: "DB-NS-3", title: "Dialback element unprefixed or with another prefix than the header's", severity: .medium,
        source: "XEP-0220 §2; RFC3920 §11.2.3",
        firing: [Example.openA + "\nC> ↓<result xmlns='jabber:server:dialback' from='a.example' to='b.example'>k</result>"],
        quiet: [Example.clean,
                // Which prefixes the header declared is unknown when the capture missed it.
                "@1 10.0.0.1 -> 10.0.0.2 midstream\nC> <presence from='u@a.example/r' to='v@b.example'/>\nC> <presence from='u@a.example/r' to='v@b.example'/>\nC> <dbx:result from='a.example' to='chat.b.example'>k</dbx:result>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, el.isDialback, ctx.canJudge(self, c, direction: e.direction, at: e.firstFrame) else { return }
        let declared = c.header(e.direction)?.prefixes(for: Namespace.dialback) ?? []
        if el.prefix == nil {
            ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                       "The \(e.direction.sideName) put <\(el.local)/> in the dialback namespace with a default xmlns instead of the prefix declared on its stream header.",
                       evidence: el.render())
        } else if !declared.contains(el.prefix!) {
            ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                       "The \(e.direction.sideName) used the dialback prefix '\(el.prefix!)', which its stream header does not declare.",
                       evidence: el.render())
        } else if el.prefix != "db" {
            ctx.report(self, severity: .info, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                       "The \(e.direction.sideName) uses the dialback prefix '\(el.prefix!)' (allowed; RFC 3920 peers may accept only 'db').",
                       evidence: el.render())
        }
    }
}

/// DB-SYN-1: attribute syntax of db:result and db:verify.
final class DBSyn1: Rule {
    let description = RuleDescription(
        id: "DB-SYN-1", title: "Malformed dialback element (attributes, type, error child)", severity: .medium,
        source: "XEP-0220 §6.1, §2.5",
        firing: [Example.openA + "\n" + Example.resultA + "\nS> ↓<db:result from='b.example' to='a.example' type='ok'/>",
                 Example.openA + "\n" + Example.resultA + "\nS> ↓<db:result from='b.example' to='a.example' type='error'/>",
                 Example.openA + "\nC> ↓<db:verify from='a.example' to='b.example'>k</db:verify>"],
        quiet: [Example.clean,
                Example.openA + "\n" + Example.resultA + "\nS> <db:result from='b.example' to='a.example' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, el.isDialback, el.local == "result" || el.local == "verify" else { return }
        var problems: [String] = []
        for a in (el.local == "verify" ? ["from", "to", "id"] : ["from", "to"]) where el[attribute: a] == nil {
            problems.append("no '\(a)'")
        }
        if let t = el[attribute: "type"], !["valid", "invalid", "error"].contains(t) { problems.append("type='\(t)'") }
        if el[attribute: "type"] == "error" {
            let err = el.child("error")
            if err == nil || !(err!.children.contains { $0.namespace == Namespace.stanzaErrors }) {
                problems.append("type='error' without an <error/> holding a stanza error condition")
            }
        }
        if !problems.isEmpty {
            ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                       "The \(e.direction.sideName)'s <\(el.qualifiedName)/> is malformed: \(problems.joined(separator: ", ")).",
                       evidence: el.render())
        } else if el.local == "result", el[attribute: "type"] != nil, el[attribute: "id"] != nil {
            ctx.report(self, severity: .info, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                       "The typed db:result carries an extra 'id' attribute (Prosody does this).", evidence: el.render())
        }
    }
}

/// DB-SYN-2: requests go initiator→acceptor, replies acceptor→initiator (unless bidi).
final class DBSyn2: Rule {
    let description = RuleDescription(
        id: "DB-SYN-2", title: "Dialback element in the wrong direction (unsolicited-dialback probe)", severity: .high,
        source: "XEP-0220 §2.2, §3.1; XEP-0288 §2.2",
        firing: [Example.openA + "\nC> ↓<db:result from='a.example' to='b.example' type='valid'/>",
                 Example.openA + "\nS> ↓<db:verify from='b.example' to='a.example' id='s9'>k</db:verify>"],
        quiet: [Example.clean,
                // Whether XEP-0288 bidi was negotiated before the capture began is unknown.
                Example.midstream + "\nC> <db:result from='a.example' to='b.example' type='valid'/>",
                // With bidi both sides may ask and answer (XEP-0288 §2.2).
                Example.openA + "\nC> <bidi xmlns='urn:xmpp:bidi'/>\n" + Example.resultA + "\nS> <db:result from='b.example' to='a.example' type='valid'/>\nS> <db:result from='chat.b.example' to='a.example'>\(Example.key)</db:result>\nC> <db:result from='a.example' to='chat.b.example' type='valid'/>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .misdirected = db else { return }
        let typed = el[attribute: "type"] != nil
        ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                   typed ? "The initiator sent a typed <\(el.qualifiedName) type='\(el[attribute: "type"]!)'/> on its initial stream: replies travel the other way (a classic unsolicited-dialback probe)."
                         : "The acceptor sent an untyped <\(el.qualifiedName)/> request on the response stream without XEP-0288 bidi.",
                   evidence: el.render())
    }
}

/// DB-KEY-1: XEP-0185 keys are 64 hexadecimal characters.
final class DBKey1: Rule {
    let description = RuleDescription(
        id: "DB-KEY-1", title: "Dialback key not in the XEP-0185 format", severity: .info, source: "XEP-0185 §2",
        firing: [Example.openA + "\nC> ↓<db:result from='a.example' to='b.example'>secret-key</db:result>"],
        quiet: [Example.clean,
                // Upper-case hexadecimal is still hexadecimal.
                Example.openA + "\nC> <db:result from='a.example' to='b.example'>\(Example.key.uppercased())</db:result>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .resultRequest(let x?) = db, !x.key.isEmpty,
              !DialbackKey.looksLikeXEP0185(x.key) else { return }
        ctx.report(self, c, e.direction, actor: .originating, frame: e.firstFrame,
                   "The dialback key is not 64 hexadecimal characters, so it was not made with the XEP-0185 recipe (RFC 3920 allows any verifiable method).",
                   evidence: el.render())
    }
}

/// DB-ADV-1: servers that use dialback errors advertise `<errors/>`.
final class DBAdv1: Rule {
    let description = RuleDescription(
        id: "DB-ADV-1", title: "Dialback errors used but <errors/> not advertised", severity: .low,
        source: "XEP-0220 §2.4.2", observability: .crossConnection,
        firing: ["C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='s1'>\nS> <stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>\n" + Example.resultA + "\nS> ↓<db:result from='b.example' to='a.example' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>"],
        quiet: [Example.clean,
                // The features were sent before the capture began.
                Example.midstream + "\n" + Example.resultA + "\nS> <db:result from='b.example' to='a.example' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, e.direction == .serverToClient else { return }
        if el.is("features", Namespace.streams), let db = el.child("dialback", namespace: Namespace.dialbackFeature), db.child("errors") == nil {
            ctx.report(self, severity: .info, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                       "The acceptor advertises the dialback feature without <errors/>, so peers must not expect XEP-0220 dialback errors (Prosody 0.12 does this).",
                       evidence: el.render())
        }
        if el.isDialback, el[attribute: "type"] == "error", !c.acceptorAdvertisedDialbackErrors, ctx.canJudge(self, c, at: e.firstFrame) {
            ctx.report(self, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                       "The acceptor sends XEP-0220 dialback errors but did not advertise <dialback><errors/></dialback> in its features.",
                       evidence: el.render())
        }
    }
}

/// DB-ADV-2: dialback is used only toward a peer that signalled it.
final class DBAdv2: Rule {
    let description = RuleDescription(
        id: "DB-ADV-2", title: "Dialback started toward a peer that did not signal dialback", severity: .info,
        source: "RFC3920 §8.3 s2; XEP-0220 §2.4.1",
        firing: ["C> $HDR to='b.example' from='a.example'>\nS> <stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='b.example' id='s1' version='1.0'>\nS> <stream:features/>\nC> ↓<db:result from='a.example' to='b.example'>\(Example.key)</db:result>"],
        quiet: [Example.clean, Example.midstream + "\n" + Example.resultA])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .resultRequest = db, c.responseHeader != nil, !c.acceptorAdvertisedDialback,
              ctx.canJudge(self, c, at: e.firstFrame) else { return }
        ctx.report(self, c, e.direction, actor: .originating, frame: e.firstFrame,
                   "The originating server sent db:result although the acceptor declared no dialback namespace and advertised no dialback feature.",
                   evidence: el.render())
    }
}
