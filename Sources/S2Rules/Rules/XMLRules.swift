import S2Dialback
import S2Model
import S2XMPP

/// XML-1: no comments, processing instructions, DTDs or custom entity references.
final class XML1: Rule {
    let description = RuleDescription(
        id: "XML-1", title: "Restricted XML (comment, PI, DTD, entity reference) on the stream", severity: .medium,
        source: "RFC3920 §11.1; RFC6120 §11.1",
        firing: [Example.openA + "\nC> ↓<!-- hello -->", Example.openA + "\nC> ↓<?foo bar?>",
                 "C> ↓<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>$HDR to='b.example'>",
                 Example.openA + "\nC> ↓<message from='u@a.example' to='v@b.example'><body>&foo;</body></message>"],
        quiet: [Example.clean, "C> <?xml version='1.0'?>$HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' id='x1'>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, c) = input.event, case .restricted(let r) = e.kind else { return }
        let what: String
        switch r {
        case .comment: what = "an XML comment"
        case .processingInstruction(let t): what = "a processing instruction <?\(t)…?>"
        case .doctype(let n): what = "a document type declaration <!DOCTYPE \(n)…>"
        case .entityReference(let n): what = "a reference to the undeclared entity &\(n);"
        default: return
        }
        ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                   "The \(e.direction.sideName) sent \(what); XMPP streams must not contain comments, processing instructions, DTDs or custom entities.",
                   evidence: what)
    }
}

/// XML-2: RFC 6120 receivers close with `<restricted-xml/>` (or `<bad-format/>`) after restricted XML.
final class XML2: Rule {
    let scope: RuleScope = .correlation
    let description = RuleDescription(
        id: "XML-2", title: "Receiver does not reject restricted XML (RFC 6120 profile)", severity: .low,
        source: "RFC3920 §11.1 vs RFC6120 §11.1, §4.9.3.18",
        firing: [Example.openA + "\nC> <!-- hello -->\nS> ↓<stream:features/>"],
        quiet: [Example.openA + "\nC> <!-- hello -->\nS> <stream:error><restricted-xml xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, c) = input.event, case .restricted(let r) = e.kind else { return }
        switch r {
        case .comment, .processingInstruction, .doctype, .entityReference: break
        default: return
        }
        // RFC 3920 receivers must ignore it, RFC 6120 receivers close: by profile, and where the
        // profiles are open, only version-1.0 (RFC 6120) receivers are held to the close.
        switch ctx.profile(of: c.address(of: e.direction.reversed)) {
        case .rfc3920: return
        case .xep0220: break
        case .either:
            guard ctx.canJudge(self, c, direction: e.direction.reversed, at: e.firstFrame),
                  c.header(e.direction.reversed)?.version == "1.0" else { return }
        }
        demandStreamError(self, ctx, c, reactor: e.direction.reversed, actor: e.direction.reversed.senderActor,
                          trigger: e.firstFrame, conditions: ["restricted-xml", "bad-format", "not-well-formed", "xml-not-well-formed"],
                          what: "restricted XML", keepSeverity: .low, otherSeverity: nil)
    }
}

/// XML-3: only well-formed, namespace-well-formed XML.
final class XML3: Rule {
    let description = RuleDescription(
        id: "XML-3", title: "XML that is not well-formed", severity: .high, source: "RFC3920 §11.3; RFC6120 §11.3",
        firing: [Example.openA + "\nC> ↓<message from='u@a.example' to='v@b.example'><body>x</bod></message>",
                 "C> <stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='b.example'>\nC> ↓<db:result from='a.example' to='b.example'>k</db:result>"],
        quiet: [Example.clean,
                // Picked up inside a forwarded message: the inner <message/> ends, then its parent's end tag
                // comes — an artifact of the cut, not ill-formed XML.
                "@1 10.0.0.1 -> 10.0.0.2 midstream\nC> nt'><forwarded xmlns='urn:xmpp:forward:0'><message from='a@a.example' to='b@b.example'><body>x</body></message></forwarded></result></message>\nC> <presence from='u@a.example/r' to='v@b.example'/>\nC> <presence from='u@a.example/r' to='v@b.example'/>",
                // A prefix declared on the header the capture missed is not undeclared.
                "@1 10.0.0.1 -> 10.0.0.2 midstream\nC> <presence from='u@a.example/r' to='v@b.example'/>\nC> <presence from='u@a.example/r' to='v@b.example'/>\nC> <db2:result xmlns:x='y' from='a.example' to='b.example'>k</db2:result>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, c) = input.event, case .notWellFormed(let code, let reason, let offset) = e.kind else { return }
        ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                   "The \(e.direction.sideName) sent XML that is not well-formed (expat: \(reason)).",
                   evidence: "expat error \(code) at stream offset \(offset): \(reason)")
    }
}

/// XML-4: ill-formed input is answered with `<not-well-formed/>` and a close.
final class XML4: Rule {
    let description = RuleDescription(
        id: "XML-4", title: "Receiver keeps the stream after ill-formed XML", severity: .medium,
        source: "RFC3920 §11.3; RFC6120 §11.3, §4.9.3.13",
        firing: [Example.openA + "\nC> <message from='u@a.example' to='v@b.example'><body>x</bod></message>\nS> ↓<db:result from='b.example' to='a.example' type='valid'/>"],
        quiet: [Example.openA + "\nC> <message from='u@a.example' to='v@b.example'><body>x</bod></message>\nS> <stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\nS> </stream:stream>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, c) = input.event, case .notWellFormed = e.kind else { return }
        demandStreamError(self, ctx, c, reactor: e.direction.reversed, actor: e.direction.reversed.senderActor,
                          trigger: e.firstFrame, conditions: ["not-well-formed", "xml-not-well-formed", "bad-format", "invalid-namespace", "restricted-xml"],
                          what: "ill-formed XML", keepSeverity: .medium, otherSeverity: nil)
    }
}

/// XML-5: UTF-8 only.
final class XML5: Rule {
    let description = RuleDescription(
        id: "XML-5", title: "Stream not in UTF-8", severity: .medium, source: "RFC3920 §11.4–11.5; RFC6120 §11.5–11.6",
        firing: ["C> ↓<?xml version='1.0' encoding='ISO-8859-1'?>$HDR to='b.example'>",
                 Example.openA + "\nC> ↓<message from='u@a.example' to='v@b.example'><body>\\xff</body></message>"],
        quiet: [Example.clean, "C> <?xml version='1.0' encoding='UTF-8'?>$HDR to='b.example' from='a.example'>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, c) = input.event, case .restricted(let r) = e.kind else { return }
        switch r {
        case .nonUTF8Encoding(let enc):
            ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                       "The \(e.direction.sideName)'s XML declaration names the encoding '\(enc)'; XMPP streams are UTF-8 only.",
                       evidence: "<?xml … encoding='\(enc)'?>")
        case .invalidUTF8:
            ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                       "The \(e.direction.sideName) sent bytes that are not valid UTF-8.",
                       evidence: "invalid UTF-8 at stream offset \(e.startOffset)")
        default: return
        }
    }
}
