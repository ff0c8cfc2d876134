import S2Dialback
import S2Model
import S2XMPP

/// DB-CORR-1: the verify repeats the result's domains, key and the RS's stream id.
final class DBCorr1: Rule {
    let scope: RuleScope = .correlation
    let description = RuleDescription(
        id: "DB-CORR-1", title: "db:verify does not match the db:result it verifies (id or key)", severity: .high,
        source: "XEP-0220 §2.1.2; RFC3920 §8.3 s8", observability: .crossConnection,
        firing: [Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "2C> <db:verify from='b.example' to='a.example' id='s1'>", with: "2C> ↓<db:verify from='b.example' to='a.example' id='s9'>"),
                 Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "2C> <db:verify from='b.example' to='a.example' id='s1'>\(Example.key)", with: "2C> ↓<db:verify from='b.example' to='a.example' id='s1'>0000")],
        quiet: [Example.clean,
                // Domains in another case are the same domains.
                Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "2C> <db:verify from='b.example' to='a.example'", with: "2C> <db:verify from='B.example' to='A.Example'") + "\n" + Example.validA,
                // The db:result may have been sent before the capture began on the connection the id names.
                "@1 10.0.0.1 -> 10.0.0.2 midstream\nC> <presence from='u@a.example/r' to='v@b.example'/>\nS> <presence from='v@b.example/r' to='u@a.example'/>\n" + Example.verifyB.replacingOccurrences(of: "id='s1'", with: "id='s0'")])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .verifyRequest(let key, let match) = db else { return }
        // Losses are declared late (by a later acknowledgment): what the capture saw of the other
        // connections is judged a moment later.
        let react = ctx.configuration.timers.react
        switch match {
        case .wrongID(let x):
            ctx.later(react, after: e.firstFrame.time) { [self] ctx in
                // The stream id the key was bound to must have been seen on the db:result's connection.
                guard x.streamID != nil, let a = ctx.model.summary(of: x.resultConnection), !a.pickedUp.serverToClient else {
                    ctx.skip(description, c.id, e.firstFrame, .gap)
                    return
                }
                ctx.report(self, c, e.direction, actor: .receiving, frame: e.firstFrame,
                           "The receiving server's db:verify carries id='\(key.id)', but the db:result for \(x.pair) arrived on \(x.resultConnection) whose stream id is '\(x.streamID ?? "")'.",
                           evidence: el.render())
            }
        case .wrongKey(let x):
            ctx.report(self, c, e.direction, actor: .receiving, frame: e.firstFrame,
                       "The receiving server's db:verify carries another key than the db:result it verifies (\(x.resultConnection), frame \(x.resultFrame.number)).",
                       evidence: el.render())
        case .none:
            // A db:result sent shortly before the capture began is not in it: then only a hint.
            let recentStart = ctx.captureStart.map { e.firstFrame.time.secondsSince($0) < ctx.configuration.timers.dialback } ?? true
            ctx.later(react, after: e.firstFrame.time) { [self] ctx in
                // The db:result may have reached the RS where the capture cannot see. The finding is strong
                // (HIGH) when the capture does see connections toward the RS — or the stream the id names —
                // and none of them carried such a db:result; otherwise it is only a hint (LOW).
                let named = ctx.model.sighting(ofStreamID: key.id)
                if named?.anyUnreadable == true {
                    ctx.skip(description, c.id, e.firstFrame, .gap)
                    return
                }
                // Toward the RS, any connection the capture could not fully read may have carried it.
                if let why = ctx.model.unreadableConnection(toward: c.clientAddress) {
                    ctx.skip(description, c.id, e.firstFrame, why)
                    return
                }
                let inbound = ctx.model.connections.contains { $0.serverAddress == c.clientAddress && !$0.hidden && !$0.damaged.clientToServer }
                    || ctx.model.retiredReadableAcceptors.contains(c.clientAddress)
                let seen = (named != nil || inbound) && !recentStart
                ctx.report(self, severity: seen ? .high : .low, c, e.direction, actor: .receiving, frame: e.firstFrame,
                           "The receiving server asks to verify (\(key.to) → \(key.from)) for stream id '\(key.id)', but no such db:result was sent on \(named.map { "that stream (\($0.first.id))" } ?? "any stream in the capture")\(seen ? "" : " (it may have travelled outside the capture)").",
                           evidence: el.render())
            }
        case .exact: break
        }
    }
}

/// DB-CORR-2: the verify reply goes back on the same connection, swapped, with the same id.
final class DBCorr2: Rule {
    let scope: RuleScope = .correlation
    let description = RuleDescription(
        id: "DB-CORR-2", title: "db:verify reply not swapped, with another id, or on another connection", severity: .high,
        source: "XEP-0220 §2.2.2; RFC3920 §8.3 s9",
        firing: [Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "2S> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>", with: "2S> ↓<db:verify from='a.example' to='b.example' id='s0' type='valid'/>"),
                 Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "2S> <db:verify from='a.example' to='b.example'", with: "2S> ↓<db:verify from='b.example' to='a.example'"),
                 // Answered on another connection (from another address of the same server) than the one that asked.
                 Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "2S> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>", with: "")
                    + "\n@3 10.0.0.3 -> 10.0.0.2\n3C> $HDR to='b.example' from='a.example'>\n3S> $HDR from='b.example' to='a.example' id='s3'>\n3C> ↓<db:verify from='a.example' to='b.example' id='s1' type='valid'/>"],
        quiet: [Example.clean,
                Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "2S> <db:verify from='a.example' to='b.example' id='s1'", with: "2S> <db:verify from='A.example' to='b.EXAMPLE' id='s1'")])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element else { return }
        var key: VerifyKey
        switch db {
        case .verifyReply(let k, _, nil)?: key = k
        case .misdirected? where el.local == "verify" && el[attribute: "type"] != nil:
            key = VerifyKey(from: el[attribute: "to"] ?? "", to: el[attribute: "from"] ?? "", id: el[attribute: "id"] ?? "")
        default: return
        }
        let unswapped = VerifyKey(from: key.to, to: key.from, id: key.id)
        if c.pendingVerifies[unswapped] != nil {
            ctx.report(self, c, e.direction, actor: .authoritative, frame: e.firstFrame,
                       "The authoritative server's db:verify reply is addressed like the request (from='\(key.to)' to='\(key.from)'); it must swap from and to.",
                       evidence: el.render())
        } else if let askedID = c.earliestPendingVerifyID(from: key.from, to: key.to) {
            ctx.report(self, c, e.direction, actor: .authoritative, frame: e.firstFrame,
                       "The authoritative server's db:verify reply carries id='\(key.id)' but the request asked about id='\(askedID)'; the id must be copied exactly.",
                       evidence: el.render())
        } else if let other = ctx.model.connectionAwaitingVerify(key), other.id != c.id {
            ctx.report(self, c, e.direction, actor: .authoritative, frame: e.firstFrame,
                       "The authoritative server answered a db:verify on \(c.id) that was asked on \(other); the reply must use the request's connection.",
                       evidence: el.render())
        }
    }
}

/// DB-CORR-3: the RS acts only on verify replies that answer its own requests.
final class DBCorr3: Rule {
    let scope: RuleScope = .correlation
    let description = RuleDescription(
        id: "DB-CORR-3", title: "Receiving server acts on an unsolicited db:verify reply", severity: .critical,
        source: "XEP-0220 §2.1.2, §3.1; RFC3920 §8.3 s9; XSF 2012-08-21", observability: .crossConnection,
        firing: [Example.openA + "\n" + Example.resultA + "\n@2 10.0.0.2 -> 10.0.0.1\n2C> $HDR to='a.example' from='b.example'>\n2S> $HDR from='a.example' to='b.example' id='s2'>\n2S> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>\nS> ↓<db:result from='b.example' to='a.example' type='valid'/>",
                 // The 2012 attack: the originating side answers its own request with a typed db:verify on its own stream.
                 Example.openA + "\n" + Example.resultA + "\nC> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>\nS> ↓<db:result from='b.example' to='a.example' type='valid'/>"],
        quiet: [Example.clean,
                // The unsolicited reply is ignored: the receiving server verifies for real first.
                Example.openA + "\n" + Example.resultA + "\nC> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>\n" + Example.verifyB + "\n" + Example.validA])
    /// A verify answer nobody asked for, and where a `valid` it caused would appear: on the
    /// connection it came on (the forged answer on the attacker's own stream), or on the
    /// connection whose stream id it names (an answer from the authoritative side).
    private struct Unsolicited { var pair: DomainPair; var rs: String; var frame: FrameRef; var connection: ConnectionID; var sameConnection: Bool; var id: String }
    private var unsolicited: [Unsolicited] = []
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element else { return }
        if unsolicited.count < 10_000 {
            switch db {
            // On a connection whose verify requests overflowed their bound, a reply may answer an untracked request.
            case .verifyReply(let key, "valid", nil)? where !c.dialbackOverflow && ctx.canJudge(self, c, at: e.firstFrame):
                // A reply from the AS side no request on this connection asked for; the RS sent it nothing.
                unsolicited.append(Unsolicited(pair: DomainPair(sender: key.to, target: key.from), rs: c.address(of: e.direction.reversed),
                                               frame: e.firstFrame, connection: c.id, sameConnection: false, id: key.id))
            case .misdirected? where el.local == "verify" && el[attribute: "type"] == "valid":
                unsolicited.append(Unsolicited(pair: DomainPair(sender: el[attribute: "from"] ?? "", target: el[attribute: "to"] ?? ""),
                                               rs: c.address(of: e.direction.reversed), frame: e.firstFrame, connection: c.id,
                                               sameConnection: true, id: el[attribute: "id"] ?? ""))
            default: break
            }
        }
        guard case .resultReply(let pair, "valid", let x)? = db, x?.verifyType == nil else { return }
        let rs = c.address(of: e.direction)
        guard let u = unsolicited.first(where: { $0.pair == pair && $0.rs == rs && ($0.sameConnection ? $0.connection == c.id : $0.id == c.streamID) })
        else { return }
        // The real verification may have travelled where the capture could not read it.
        if ctx.model.unreadableConnection(involving: rs, between: u.frame.time, and: e.firstFrame.time) {
            ctx.skip(description, c.id, e.firstFrame, .gap)
            return
        }
        ctx.report(self, c, e.direction, actor: .receiving, frame: e.firstFrame,
                   "The receiving server validated \(pair) on the strength of a db:verify reply it never asked for (\(u.connection), frame \(u.frame.number)): the 2012 unsolicited-dialback attack.",
                   evidence: el.render())
    }
}

/// DB-CORR-4: the OS acts only on db:result replies to its own requests.
final class DBCorr4: Rule {
    let interests: RuleInterests = .all
    let description = RuleDescription(
        id: "DB-CORR-4", title: "Originating server acts on an unsolicited db:result reply", severity: .critical,
        source: "XEP-0220 §2.1.1, §3.1; XSF 2012-08-21",
        firing: [Example.openA + "\nS> <db:result from='b.example' to='a.example' type='valid'/>\nC> ↓<message from='u@a.example' to='v@b.example' id='m1'><body>hi</body></message>"],
        quiet: [Example.clean,
                // A repeated valid for a pair already validated is not an unsolicited result.
                Example.validated + "\n" + Example.validA + "\n" + Example.message,
                // The request may have been sent before the capture began.
                Example.midstream + "\nS> <db:result from='b.example' to='a.example' type='valid'/>\n" + Example.message,
                // No handshake seen, and the acceptor's header and answer are read before the initiator's
                // first byte: its request (with its SYN) may be among what the sensor dropped.
                "@1 10.0.0.1 -> 10.0.0.2 midstream\nS> $HDR from='b.example' to='a.example' id='s1'>\n" + Example.validA
                    + "\nC> <presence from='u@a.example/r' to='v@b.example'/>\n" + Example.message])
    private var unsolicited: [ConnectionID: Set<DomainPair>] = [:]
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        if case .closed(let c) = input { unsolicited[c.id] = nil; return }
        guard let (e, el, c, db) = input.element else { return }
        if case .resultReply(let pair, "valid", nil) = db, e.direction == .serverToClient, !c.bidi, !c.dialbackOverflow {
            if c.isValidated(pair) || !ctx.canJudge(self, c, at: e.firstFrame) { return }
            unsolicited[c.id, default: []].insert(pair)
            return
        }
        guard e.direction == .clientToServer, el.isStanza, let set = unsolicited[c.id],
              let f = el.fromDomain, let t = el.toDomain,
              set.contains(DomainPair(sender: f, target: t)) else { return }
        unsolicited[c.id]?.remove(DomainPair(sender: f, target: t))
        ctx.report(self, c, e.direction, actor: .originating, frame: e.firstFrame,
                   "The originating server sends stanzas for (\(f) → \(t)) after a type='valid' db:result it never requested on this stream.",
                   evidence: el.render())
    }
}

/// DB-CORR-5: the RS reports the verdict on the connection the verify's id names.
final class DBCorr5: Rule {
    let scope: RuleScope = .correlation
    let description = RuleDescription(
        id: "DB-CORR-5", title: "Verdict reported on another connection than the one verified", severity: .high,
        source: "XEP-0220 §2.1.2", observability: .crossConnection,
        firing: [Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB + "\n3C> $HDR to='b.example' from='a.example'>\n3S> $HDR from='b.example' to='a.example' id='s3'>\n3S> ↓<db:result from='b.example' to='a.example' type='valid'/>"],
        quiet: [Example.clean,
                // On a connection picked up mid-stream the answer may be to a request sent before the capture.
                Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB + "\n@3 10.0.0.1 -> 10.0.0.2 midstream\n3C> <presence from='u@a.example/r' to='v@b.example'/>\n3S> <presence from='v@b.example/r' to='u@a.example'/>\n3S> <db:result from='b.example' to='a.example' type='valid'/>\n" + Example.validA])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .resultReply(let pair, let type?, nil) = db, type == "valid" || type == "invalid",
              !c.dialbackOverflow, let x = ctx.model.verifiedAwaitingVerdict(pair, besides: c.id),
              ctx.canJudge(self, c, at: e.firstFrame)
        else { return }
        ctx.report(self, c, e.direction, actor: .receiving, frame: e.firstFrame,
                   "The receiving server sent its verdict for \(pair) on \(c.id) (stream id '\(c.streamID ?? "")'), but the verified db:result came on \(x.resultConnection) (stream id '\(x.streamID ?? "")').",
                   evidence: el.render())
    }
}

/// DB-CORR-6: the RS's verdict agrees with the AS's.
final class DBCorr6: Rule {
    let scope: RuleScope = .correlation
    let description = RuleDescription(
        id: "DB-CORR-6", title: "Receiving server answers valid although the authoritative server said invalid", severity: .critical,
        source: "RFC3920 §8.3 s10; XEP-0220 §2.1.2, §2.2.1", observability: .crossConnection,
        firing: [Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "type='valid'", with: "type='invalid'") + "\nS> ↓<db:result from='b.example' to='a.example' type='valid'/>"],
        quiet: [Example.clean,
                // The authoritative server said invalid and the receiving server agrees.
                Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "type='valid'", with: "type='invalid'") + "\nS> <db:result from='b.example' to='a.example' type='invalid'/>\nS> </stream:stream>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .resultReply(_, "valid", let x?) = db, x.verifyType == "invalid" else { return }
        ctx.report(self, c, e.direction, actor: .receiving, frame: e.firstFrame,
                   "The receiving server validated \(x.pair) although the authoritative server answered invalid (\(x.verifyConnection.map(\.description) ?? "?"), frame \(x.verifyReplyFrame?.number ?? 0)).",
                   evidence: el.render())
    }
}

/// DB-CORR-7: once the AS answered, the RS tells the OS.
final class DBCorr7: Rule {
    let scope: RuleScope = .correlation
    let description = RuleDescription(
        id: "DB-CORR-7", title: "Authoritative verdict never relayed to the originating server", severity: .medium,
        source: "XEP-0220 §2.2.1; RFC3920 §8.3 s10", observability: .crossConnection,
        firing: [Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "2S> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>", with: "2S> ↓<db:verify from='a.example' to='b.example' id='s1' type='valid'/>") + "\n+20\n" + Example.message],
        quiet: [Example.clean,
                // Bidi: the verdict for the acceptor's own request travels initiator → acceptor.
                Example.openA + "\nC> <bidi xmlns='urn:xmpp:bidi'/>\n" + Example.resultA + "\n" + Example.verifyB + "\n" + Example.validA
                    + "\nS> <db:result from='chat.b.example' to='a.example'>\(Example.key)</db:result>\n@4 10.0.0.1 -> 10.0.0.2\n4C> $HDR to='b.example' from='a.example'>\n4S> $HDR from='b.example' to='a.example' id='s4'>\n4C> <db:verify from='a.example' to='chat.b.example' id='s1'>\(Example.key)</db:verify>\n4S> <db:verify from='chat.b.example' to='a.example' id='s1' type='valid'/>\nC> <db:result from='a.example' to='chat.b.example' type='valid'/>\n+20\n" + Example.message])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, _, db) = input.element, case .verifyReply(_, _, let r?) = db, let x = r.exchange, x.outcome == nil,
              let a = ctx.model.connection(x.resultConnection), a.end == nil else { return }
        let pair = x.pair
        let rs = x.resultDirection.reversed
        ctx.expect(self, on: a, by: rs, actor: .receiving, trigger: e.firstFrame, within: ctx.configuration.timers.react,
                   missing: ("The authoritative server answered for \(pair), but the receiving server did not tell the originating server on \(a.id).", el.render(), nil)) { ev in
            guard ev.direction == rs else { return .pending }
            switch ev.kind {
            case .element(let reply) where reply.answersResult(pair): return .satisfied
            case .element(let reply) where reply.isStreamError: return .satisfied
            case .streamClosed: return .satisfied
            default: return .pending
            }
        }
    }
}

/// DB-CORR-8: the AS answers every db:verify.
final class DBCorr8: Rule {
    let description = RuleDescription(
        id: "DB-CORR-8", title: "db:verify request never answered", severity: .medium,
        source: "XEP-0220 §2.2.2; RFC3920 §8.3 s9",
        firing: [Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "2C> <db:verify", with: "2C> ↓<db:verify").replacingOccurrences(of: "2S> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>", with: "+70\n2C> <presence from='b.example' to='a.example'/>")],
        quiet: [Example.clean,
                // The capture ends 5 s after the request: the answer was not yet due.
                Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "2S> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>", with: "+5\n2C> <presence from='b.example' to='a.example'/>")])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .verifyRequest(let key, _) = db else { return }
        let authoritative = e.direction.reversed
        ctx.expect(self, on: c, by: authoritative, actor: .authoritative, trigger: e.firstFrame, within: ctx.configuration.timers.dialback,
                   missing: ("The authoritative server did not answer the db:verify for id '\(key.id)' within \(Int(ctx.configuration.timers.dialback)) s.", el.render(), nil)) { ev in
            guard ev.direction == authoritative else { return .pending }
            switch ev.kind {
            case .element(let reply) where reply.isDialback && reply.local == "verify" && reply[attribute: "type"] != nil: return .satisfied
            case .element(let reply) where reply.isStreamError: return .satisfied
            case .streamClosed: return .satisfied
            default: return .pending
            }
        }
    }
}

/// DB-CORR-9: `valid` only after verification (or a visible authentication).
final class DBCorr9: Rule {
    let scope: RuleScope = .correlation
    let description = RuleDescription(
        id: "DB-CORR-9", title: "Receiving server answers valid without any visible verification", severity: .medium,
        source: "RFC3920 §8.3 s8–s10; XEP-0220 §2.2.1; XSF 2012-08-21", observability: .crossConnection,
        firing: [Example.openA + "\n" + Example.resultA + "\nS> ↓<db:result from='b.example' to='a.example' type='valid'/>",
                 // LOW: the receiving server has a connection whose content the capture cannot see (picked up
                 // mid-stream here), over which the verify may have travelled.
                 Example.openA + "\n" + Example.resultA + "\n@2 10.0.0.2 -> 10.0.0.1 midstream\n2C> <presence from='v@b.example/r' to='u@a.example'/>\nS> ↓<db:result from='b.example' to='a.example' type='valid'/>"],
        quiet: [Example.clean,
                // The verify travelled from another address of the receiving server's cluster.
                Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "@2 10.0.0.2 -> 10.0.0.1", with: "@2 10.0.0.5 -> 10.0.0.1") + "\n" + Example.validA])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .resultReply(_, "valid", let x?) = db, x.verifyConnection == nil,
              !c.tls, !c.saslSucceeded else { return }
        let rs = c.address(of: e.direction)
        let since = x.resultFrame.time
        let rendered = el.render()
        // Losses are declared late (by a later acknowledgment): a verify lost on another connection
        // shows as a hole only then, so the other connections are looked at a moment later.
        ctx.later(ctx.configuration.timers.react, after: e.firstFrame.time) { [self] ctx in
            judge(ctx, c, e, x, rs: rs, since: since, evidence: rendered)
        }
    }

    private func judge(_ ctx: RuleContext, _ c: ConnectionModel, _ e: XMPPEvent, _ x: DialbackExchange, rs: String, since: Timestamp, evidence: String) {
        // A connection from the RS toward the sender domain opened meanwhile, unreadable, means
        // verification was attempted where the capture cannot follow it.
        if ctx.model.unreadableConnection(from: rs, to: x.originating, openedSince: since) { return }
        // Any unreadable connection of the RS alive meanwhile (TLS, picked up mid-stream, lost
        // bytes), or the RS's domain served from other addresses: the verify may have gone there.
        let unseenPath = ctx.model.unreadableConnection(involving: rs, between: since, and: e.firstFrame.time)
            || ctx.model.addresses(hosting: x.receiving).contains { $0 != rs }
            || ctx.model.lossObserved(since: since)
        ctx.report(self, severity: unseenPath ? .low : nil, c, e.direction, actor: .receiving, frame: e.firstFrame,
                   unseenPath
                       ? "The receiving server answered valid for \(x.pair) with no db:verify for this key in the capture; it has connections the capture cannot read (encrypted, picked up mid-stream, lossy, or other addresses), or the capture lost packets meanwhile, so the verify may have travelled where it was not seen."
                       : "The receiving server answered valid for \(x.pair) with no db:verify for this key anywhere in the capture and no TLS or SASL on the stream (the verification may have travelled outside the capture).",
                   evidence: evidence)
    }
}
