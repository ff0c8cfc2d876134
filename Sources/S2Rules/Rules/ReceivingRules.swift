import S2Dialback
import S2Model
import S2XMPP

/// DB-RCV-1: if the RS proceeds, its stream header comes first.
final class DBRcv1: Rule {
    let description = RuleDescription(
        id: "DB-RCV-1", title: "Acceptor sends elements before its stream header", severity: .high, source: "RFC3920 §8.3 s3",
        firing: ["C> $HDR to='b.example' from='a.example'>\nS> ↓<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>"],
        quiet: [Example.clean,
                // The acceptor's header was before the capture: its first element seen is not its first.
                Example.midstream + "\nS> <stream:features/>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, h, c) = input.header, e.direction == .serverToClient, h.local != "stream",
              !(h.local == "error" && h.namespace == Namespace.streams) else { return }
        ctx.report(self, c, e.direction, actor: .receiving, frame: e.firstFrame,
                   "The acceptor's first element is <\(h.local)/> instead of its stream header (which carries the stream id dialback needs).",
                   evidence: h.render())
    }
}

/// DB-RCV-2: a db:result for a domain the RS does not host is refused, never validated.
final class DBRcv2: Rule {
    let scope: RuleScope = .correlation
    let description = RuleDescription(
        id: "DB-RCV-2", title: "db:result for a domain the receiving server does not host is not refused", severity: .high,
        source: "RFC3920 §8.3 s4; XEP-0220 §2.2.1, §2.5", observability: .userKnowledge,
        firing: ["#!host b.example=10.0.0.2\n" + Example.openA + "\nC> <db:result from='a.example' to='nope.example'>\(Example.key)</db:result>\nS> ↓<db:result from='nope.example' to='a.example' type='valid'/>",
                 Example.openA + "\nC> <db:result from='a.example' to='nope.example'>\(Example.key)</db:result>\nS> ↓<stream:error><unsupported-stanza-type xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"],
        quiet: [Example.clean,
                // Bidi (XEP-0288): the acceptor asks the initiator, who hosts the target.
                Example.openA + "\nC> <bidi xmlns='urn:xmpp:bidi'/>\n" + Example.resultA + "\n" + Example.verifyB + "\n" + Example.validA + "\nS> <db:result from='chat.b.example' to='a.example'>\(Example.key)</db:result>\nC> <db:result from='a.example' to='chat.b.example' type='valid'/>",
                // The target's case differs from the header's 'from'.
                Example.openA + "\nC> <db:result from='a.example' to='B.EXAMPLE'>\(Example.key)</db:result>\n" + Example.verifyB + "\nS> <db:result from='b.example' to='a.example' type='valid'/>",
                Example.openA + "\nC> <db:result from='a.example' to='nope.example'>\(Example.key)</db:result>\nS> <db:result from='nope.example' to='a.example' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>",
                Example.openA + "\nC> <db:result from='a.example' to='nope.example'>\(Example.key)</db:result>\nS> <stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .resultRequest(let x?) = db else { return }
        // The receiver of the request: the acceptor, or the initiator on a bidi connection. What it is
        // known to host, plus the domain its own stream header claims.
        let receiver = e.direction.reversed
        let claimed = c.header(receiver)?.from.map(normalizedDomain)
        guard ctx.model.knowsHosted(by: c.address(of: receiver)) || claimed != nil,
              !ctx.model.hosts(c.address(of: receiver), x.receiving), claimed != x.receiving else { return }
        let configured = ctx.model.isHostKnown(c.address(of: receiver))
        // RULES.md §4: an unknown target may be refused either way; only a profile the user chose decides.
        let profile = ctx.configuration.profile ?? .either
        let pair = x.pair
        let what = "a db:result for '\(x.receiving)', a domain it does not host"
        ctx.expect(self, on: c, by: receiver, actor: .receiving, trigger: e.firstFrame, within: ctx.configuration.timers.dialback,
                   missing: ("The receiving server did not refuse \(what) (expected <host-unknown/> or an item-not-found dialback error).",
                             el.render(), .medium)) { r in
            guard r.direction == receiver else { return .pending }
            switch r.kind {
            case .element(let reply) where reply.isStreamError:
                let cond = reply.streamErrorCondition ?? "?"
                guard ["host-unknown", "host-gone", "item-not-found"].contains(cond) else {
                    return .violated(severity: .low, message: "The receiving server answered \(what) with <\(cond)/> instead of <host-unknown/> (or an item-not-found dialback error).",
                                     evidence: reply.render(), frame: r.firstFrame)
                }
                if profile == .xep0220 {
                    return .violated(severity: .low, message: "The receiving server closed the stream (<\(cond)/>) after \(what); XEP-0220 answers with an item-not-found dialback error and keeps the stream.",
                                     evidence: reply.render(), frame: r.firstFrame)
                }
                return .satisfied
            case .element(let reply) where reply.answersResult(pair):
                if reply[attribute: "type"] == "valid" {
                    // Without user knowledge, `valid` proves the domain is hosted after all.
                    return configured ? .violated(severity: .high, message: "The receiving server validated \(what).",
                                                  evidence: reply.render(), frame: r.firstFrame) : .satisfied
                }
                if reply[attribute: "type"] == "error" && profile == .rfc3920 {
                    return .violated(severity: .low, message: "The receiving server answered \(what) with a dialback error; RFC 3920 §8.3 demands the <host-unknown/> stream error.",
                                     evidence: reply.render(), frame: r.firstFrame)
                }
                return .satisfied
            case .streamClosed:
                return .satisfied
            default:
                return .pending
            }
        }
    }
}

/// DB-RCV-3: a dialback error is not a stream error: the sender keeps the stream.
final class DBRcv3: Rule {
    let scope: RuleScope = .correlation
    let description = RuleDescription(
        id: "DB-RCV-3", title: "Stream closed right after a dialback error", severity: .medium,
        source: "XEP-0220 §2.2.1, §2.2.2, §2.5",
        firing: [Example.openA + "\n" + Example.resultA + "\nS> <db:result from='b.example' to='a.example' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>\nS> ↓</stream:stream>"],
        quiet: [Example.openA + "\n" + Example.resultA + "\nS> <db:result from='b.example' to='a.example' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>\n+20\nS> </stream:stream>"])
    private var lastError: [ConnectionID: (Direction, FrameRef)] = [:]
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, c) = input.event else {
            if case .closed(let c) = input { lastError[c.id] = nil }
            return
        }
        if case .element(let el) = e.kind, el.isDialback, el[attribute: "type"] == "error" {
            lastError[c.id] = (e.direction, e.firstFrame)
            return
        }
        let closing: Bool
        switch e.kind {
        case .streamClosed: closing = true
        case .element(let el): closing = el.isStreamError
        default: closing = false
        }
        // RFC 3920 peers have no non-fatal dialback errors: the close is theirs to make.
        guard closing, let (d, f) = lastError[c.id], d == e.direction, ctx.profile(of: c.address(of: d)) != .rfc3920,
              // The peer's own close, which would explain it, may be in lost bytes.
              ctx.canJudge(self, c, direction: d.reversed, at: e.firstFrame),
              e.firstFrame.time.secondsSince(f.time) <= ctx.configuration.timers.react,
              c.streamError[d.reversed] == nil, !c.streamClosed[d.reversed] else { return }
        lastError[c.id] = nil
        ctx.report(self, c, e.direction, actor: e.direction == .serverToClient ? .receiving : .initiator, frame: e.firstFrame,
                   "The \(e.direction.sideName) closed the stream right after sending a dialback error; XEP-0220 dialback errors are not stream errors and the stream must stay up.",
                   evidence: "stream closed \(fixed(e.firstFrame.time.secondsSince(f.time), 3)) s after the dialback error in frame \(f.number)")
    }
}


/// DB-RCV-5: after `invalid` with nothing else validated, the RS closes the stream.
final class DBRcv5: Rule {
    let description = RuleDescription(
        id: "DB-RCV-5", title: "Receiving server does not close the stream after an invalid key", severity: .medium,
        source: "RFC3920 §8.3 s10; XEP-0220 §2.2.1",
        firing: [Example.openA + "\n" + Example.resultA + "\nS> ↓<db:result from='b.example' to='a.example' type='invalid'/>\n+15\nC> <message from='u@a.example' to='v@b.example'/>",
                 Example.openA + "\n" + Example.resultA + "\nS> ↓<db:result from='b.example' to='a.example' type='invalid'/>\nC> </stream:stream>\nclose"],
        quiet: [Example.openA + "\n" + Example.resultA + "\nS> <db:result from='b.example' to='a.example' type='invalid'/>\nS> </stream:stream>\nclose",
                // The capture ends 2 ms after the originating server's FIN: the receiving server still had time.
                Example.openA + "\n" + Example.resultA + "\nS> <db:result from='b.example' to='a.example' type='invalid'/>\nC> </stream:stream>\nfin C"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .resultReply(_, "invalid", _?) = db, e.direction == .serverToClient,
              c.validated.clientToServer.isEmpty, ctx.canJudge(self, c, at: e.firstFrame) else { return }
        ctx.expect(self, on: c, by: .serverToClient, actor: .receiving, trigger: e.firstFrame, within: ctx.configuration.timers.react,
                   closeIsEnough: false,
                   missing: ("The receiving server answered type='invalid' with no other pair validated, but did not close its stream (</stream:stream>) and the connection.",
                             el.render(), nil)) { r in
            guard r.direction == .serverToClient else { return .pending }
            if case .streamClosed = r.kind { return .satisfied }
            return .pending
        }
    }
}

/// DB-RCV-6: the db:result answer swaps from/to.
final class DBRcv6: Rule {
    let description = RuleDescription(
        id: "DB-RCV-6", title: "db:result answer not addressed back to the request", severity: .high,
        source: "XEP-0220 §2.2.1; RFC3920 §8.3 s10",
        firing: [Example.openA + "\n" + Example.resultA + "\nS> ↓<db:result from='a.example' to='b.example' type='valid'/>",
                 // Answered from the right target but to another sender than the one that asked.
                 Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB + "\nS> ↓<db:result from='b.example' to='x.example' type='valid'/>",
                 Example.openA + "\n" + Example.resultA + "\nS> ↓<db:result from='b.example' to='a.example'/>"],
        quiet: [Example.clean,
                Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB + "\nS> <db:result from='B.example' to='A.EXAMPLE' type='valid'/>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element else { return }
        // An untyped answer is a request in the wrong direction to the model: judged here when a request waits.
        let asker = e.direction.reversed
        if el.isDialback, el.local == "result", el[attribute: "type"] == nil, case .misdirected? = db,
           c.pendingResults[asker][DomainPair(sender: el[attribute: "to"] ?? "", target: el[attribute: "from"] ?? "")] != nil {
            ctx.report(self, c, e.direction, actor: .receiving, frame: e.firstFrame,
                       "The receiving server's db:result answer has no 'type' (valid, invalid or error).", evidence: el.render())
            return
        }
        guard case .resultReply(let pair, _, nil) = db else { return }
        let pending = c.pendingResults[asker]
        let unswapped = DomainPair(sender: pair.target, target: pair.sender)
        if pending[unswapped] != nil {
            ctx.report(self, c, e.direction, actor: .receiving, frame: e.firstFrame,
                       "The receiving server's db:result answer is addressed from='\(pair.target)' to='\(pair.sender)', the same way as the request; the answer must swap them.",
                       evidence: el.render())
        } else if let asked = pending.keys.first(where: { $0.target == pair.target && $0.sender != pair.sender }) {
            ctx.report(self, c, e.direction, actor: .receiving, frame: e.firstFrame,
                       "The receiving server answers '\(pair.sender)' for target '\(pair.target)', but the pending request came from '\(asked.sender)'; the answer's 'to' must be the request's 'from'.",
                       evidence: el.render())
        }
    }
}

/// DB-RCV-8: piggybacked db:result requests on a validated stream still get answers.
final class DBRcv8: Rule {
    let description = RuleDescription(
        id: "DB-RCV-8", title: "Piggybacked db:result gets no answer", severity: .low,
        source: "RFC3920 §8.3; XEP-0220 §2.2.1, §2.6.1",
        firing: [Example.validated + "\nC> ↓<db:result from='rooms.a.example' to='b.example'>\(Example.key)</db:result>\n+70\nC> <message from='u@a.example' to='v@b.example'/>"],
        quiet: [Example.validated + "\nC> <db:result from='rooms.a.example' to='b.example'>\(Example.key)</db:result>\n+5\nS> <db:result from='b.example' to='rooms.a.example' type='valid'/>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .resultRequest(let x?) = db, !c.validated[e.direction].isEmpty else { return }
        let pair = x.pair
        let receiver = e.direction.reversed
        ctx.expect(self, on: c, by: receiver, actor: .receiving, trigger: e.firstFrame, within: ctx.configuration.timers.dialback,
                   missing: ("The receiving server never answered a piggybacked db:result for \(pair) on an already validated stream.", el.render(), nil)) { r in
            guard r.direction == receiver else { return .pending }
            switch r.kind {
            case .element(let reply) where reply.answersResult(pair): return .satisfied
            case .element(let reply) where reply.isStreamError: return .satisfied
            case .streamClosed: return .satisfied
            default: return .pending
            }
        }
    }
}

/// DB-RCV-9: a failed verify leg is reported to the originating server.
final class DBRcv9: Rule {
    let scope: RuleScope = .correlation
    let interests: RuleInterests = .allButStanzas
    static let verifyLeg = "@2 10.0.0.2 -> 10.0.0.1\n2C> $HDR to='a.example' from='b.example'>\n2S> $HDR from='a.example' to='b.example' id='s2'>\n2C> <db:verify from='b.example' to='a.example' id='s1'>\(Example.key)</db:verify>"
    let description = RuleDescription(
        id: "DB-RCV-9", title: "Failure toward the authoritative server not reported to the originating server", severity: .medium,
        source: "RFC3920 §8.3 s7; XEP-0220 §2.5, §2.1.2", observability: .crossConnection,
        firing: [Example.openA + "\n" + Example.resultA + "\n" + verifyLeg + "\n2S> <stream:error><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\n2S> </stream:stream>\nS> ↓<db:result from='b.example' to='a.example' type='valid'/>",
                 // Prosody 0.12: the verify stream ends with <host-unknown/> and the originating server is never told.
                 Example.openA + "\n" + Example.resultA + "\n" + verifyLeg + "\n2S> ↓<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\n2S> </stream:stream>\n+15\n" + Example.message,
                 // The authoritative server closes its stream with the verify pending.
                 Example.openA + "\n" + Example.resultA + "\n" + verifyLeg + "\n2S> ↓</stream:stream>\n2close\n+15\n" + Example.message],
        quiet: [Example.openA + "\n" + Example.resultA + "\n" + verifyLeg + "\n2S> <stream:error><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\n2S> </stream:stream>\nS> <db:result from='b.example' to='a.example' type='error'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>",
                Example.openA + "\n" + Example.resultA + "\n" + verifyLeg + "\n2S> <stream:error><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\nS> <stream:error><remote-connection-failed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
                // The verify was answered before the authoritative server closed: no failure.
                Example.clean])
    /// Verify requests whose failure was already handled, per verify connection.
    private var handled: [ConnectionID: Set<VerifyKey>] = [:]

    func check(_ input: RuleInput, _ ctx: RuleContext) {
        let failed: ConnectionModel
        let trigger: FrameRef
        var failedSides: [Direction] = []
        switch input {
        case .event(let x):
            let e = x.event, c = x.connection, el = x.element
            if let el, el.isStreamError { failedSides = [e.direction] } else if case .streamClosed = e.kind { failedSides = [e.direction] }
            failed = c
            trigger = e.firstFrame
        case .closed(let c):
            guard let end = c.end, let frame = c.closeFrame else { handled[c.id] = nil; return }
            failed = c
            trigger = frame
            failedSides = Direction.allCases.filter { end.closedOnWire(by: $0) }
        case .finished:
            return
        }
        // A closed connection's record goes once its last failure is handled.
        defer { if case .closed = input { handled[failed.id] = nil } }
        guard !failedSides.isEmpty, !failed.pendingVerifies.isEmpty else { return }
        // The side that answers verifies is the authoritative server: its stream ended or failed.
        for r in failed.pendingVerifies.values where failedSides.contains(r.direction.reversed) {
            // An answer may lie in bytes the capture lost.
            if failed.damaged[r.direction.reversed] || failed.pickedUp[r.direction.reversed] {
                ctx.skip(description, failed.id, trigger, .gap)
                continue
            }
            guard let x = r.exchange, x.outcome == nil, let a = ctx.model.connection(x.resultConnection), a.end == nil,
                  handled[failed.id, default: []].insert(r.key).inserted else { continue }
            let pair = x.pair
            let rs = x.resultDirection.reversed
            ctx.expect(self, on: a, by: rs, actor: .receiving, trigger: trigger, within: ctx.configuration.timers.react,
                       missing: ("The verification of \(pair) with the authoritative server failed on \(failed.id), but the receiving server did not report it on \(a.id) (expected <remote-connection-failed/> or a remote-server-not-found dialback error).",
                                 "failure on \(failed.id) at frame \(trigger.number)", nil)) { ev in
                guard ev.direction == rs else { return .pending }
                switch ev.kind {
                case .element(let el) where el.isStreamError: return .satisfied
                case .streamClosed: return .satisfied
                case .element(let el) where el.answersResult(pair):
                    let t = el[attribute: "type"]
                    if t == "error" || t == "invalid" { return .satisfied }
                    return .violated(severity: nil, message: "The receiving server answered type='\(t ?? "")' for \(pair) although its verification with the authoritative server failed.",
                                     evidence: el.render(), frame: ev.firstFrame)
                default: return .pending
                }
            }
        }
    }
}

/// DB-RCV-10: a verify-only connection is closed after the verdict.
final class DBRcv10: Rule {
    let description = RuleDescription(
        id: "DB-RCV-10", title: "Verify-only connection left open after the verdict", severity: .info,
        source: "XEP-0220 §2.1.2; RFC3920 §8.3 s9",
        firing: [Example.openA + "\n" + Example.resultA + "\n@2 10.0.0.2 -> 10.0.0.1\n2C> $HDR to='a.example' from='b.example'>\n2S> $HDR from='a.example' to='b.example' id='s2'>\n2S> <stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>\n2C> <db:verify from='b.example' to='a.example' id='s1'>\(Example.key)</db:verify>\n2S> ↓<db:verify from='a.example' to='b.example' id='s1' type='valid'/>\n" + Example.validA + "\n+40\n" + Example.message],
        quiet: [Example.clean,
                // The verify-only connection closes 20 s after the verdict, within the 30 s allowed.
                Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB + "\n" + Example.validA + "\n+20\n2C> </stream:stream>\n2S> </stream:stream>\n2close"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .verifyReply = db, c.carriedOnlyVerify, c.pendingVerifies.isEmpty,
              ctx.canJudge(self, c, at: e.firstFrame) else { return }
        ctx.expect(self, on: c, by: e.direction, actor: .authoritative, trigger: e.firstFrame, within: ctx.configuration.timers.close,
                   missing: ("A connection that only carried dialback verification stayed open more than \(Int(ctx.configuration.timers.close)) s after the verdict.", el.render(), nil)) { r in
            if case .element(let x) = r.kind, x.isDialback || x.isStanza { return .satisfied }
            if case .streamClosed = r.kind { return .satisfied }
            return .pending
        }
    }
}
