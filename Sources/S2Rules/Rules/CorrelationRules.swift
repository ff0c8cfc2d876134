import S2Dialback
import S2Model
import S2XMPP

/// DB-CORR-1: the verify repeats the result's domains, key and the RS's stream id.
final class DBCorr1: Rule {
    let description = RuleDescription(
        id: "DB-CORR-1", title: "db:verify does not match the db:result it verifies (id or key)", severity: .high,
        source: "XEP-0220 §2.1.2; RFC3920 §8.3 s8", observability: .crossConnection,
        firing: [Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "id='s1'>", with: "id='s9'>"),
                 Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "id='s1'>\(Example.key)", with: "id='s1'>0000")],
        quiet: [Example.clean])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .verifyRequest(let key, let match) = db else { return }
        switch match {
        case .wrongID(let x):
            ctx.report(self, c, e.direction, actor: .receiving, frame: e.firstFrame,
                       "The receiving server's db:verify carries id='\(key.id)', but the db:result for \(x.pair) arrived on \(x.resultConnection) whose stream id is '\(x.streamID ?? "")'.",
                       evidence: el.render())
        case .wrongKey(let x):
            ctx.report(self, c, e.direction, actor: .receiving, frame: e.firstFrame,
                       "The receiving server's db:verify carries another key than the db:result it verifies (\(x.resultConnection), frame \(x.resultFrame.number)).",
                       evidence: el.render())
        case .none:
            // The db:result may have reached the RS where the capture cannot see. The finding is strong
            // (HIGH) when the capture does see connections toward the RS — or the stream the id names —
            // and none of them carried such a db:result; otherwise it is only a hint (LOW).
            let named = ctx.model.streamIDUse(key.id)
            if named.count > 0 && named.unreadable > 0 { return }
            let inbound = ctx.model.retiredReadableAcceptors.contains(c.clientAddress)
                || ctx.model.openConnections(toServer: c.clientAddress).contains { !$0.hidden && !$0.damaged[0] }
            let seen = named.count > 0 || inbound
            ctx.report(self, severity: seen ? .high : .low, c, e.direction, actor: .receiving, frame: e.firstFrame,
                       "The receiving server asks to verify (\(key.to) → \(key.from)) for stream id '\(key.id)', but no such db:result was sent on \(named.first.map { "that stream (\($0))" } ?? "any stream in the capture")\(seen ? "" : " (it may have travelled outside the capture)").",
                       evidence: el.render())
        case .exact: break
        }
    }
}

/// DB-CORR-2: the verify reply goes back on the same connection, swapped, with the same id.
final class DBCorr2: Rule {
    let description = RuleDescription(
        id: "DB-CORR-2", title: "db:verify reply not swapped, with another id, or on another connection", severity: .high,
        source: "XEP-0220 §2.2.2; RFC3920 §8.3 s9",
        firing: [Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "id='s1' type='valid'", with: "id='s0' type='valid'"),
                 Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "2S> <db:verify from='a.example' to='b.example'", with: "2S> <db:verify from='b.example' to='a.example'")],
        quiet: [Example.clean])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .verifyReply(let key, _, nil) = db else { return }
        let unswapped = VerifyKey(from: key.to, to: key.from, id: key.id)
        if c.pendingVerifies[unswapped] != nil {
            ctx.report(self, c, e.direction, actor: .authoritative, frame: e.firstFrame,
                       "The authoritative server's db:verify reply is addressed like the request (from='\(key.to)' to='\(key.from)'); it must swap from and to.",
                       evidence: el.render())
        } else if let askedID = c.earliestPendingVerifyID(from: key.from, to: key.to) {
            ctx.report(self, c, e.direction, actor: .authoritative, frame: e.firstFrame,
                       "The authoritative server's db:verify reply carries id='\(key.id)' but the request asked about id='\(askedID)'; the id must be copied exactly.",
                       evidence: el.render())
        } else if let other = ctx.model.connectionAwaitingVerify(key, from: c.serverAddress, besides: c.id) {
            ctx.report(self, c, e.direction, actor: .authoritative, frame: e.firstFrame,
                       "The authoritative server answered a db:verify on \(c.id) that was asked on \(other); the reply must use the request's connection.",
                       evidence: el.render())
        }
    }
}

/// DB-CORR-3: the RS acts only on verify replies that answer its own requests.
final class DBCorr3: Rule {
    let description = RuleDescription(
        id: "DB-CORR-3", title: "Receiving server acts on an unsolicited db:verify reply", severity: .critical,
        source: "XEP-0220 §2.1.2, §3.1; RFC3920 §8.3 s9; XSF 2012-08-21", observability: .crossConnection,
        firing: [Example.openA + "\n" + Example.resultA + "\n@2 10.0.0.2 -> 10.0.0.1\n2C> $HDR to='a.example' from='b.example'>\n2S> $HDR from='a.example' to='b.example' id='s2'>\n2S> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>\n" + Example.validA],
        quiet: [Example.clean])
    private struct Seen: Hashable {
        var pair: DomainPair
        var rs: String
        var id: String
    }
    /// The first unsolicited `valid` verify reply per (pair, receiving server, id); at most 10,000.
    private var unsolicited: [Seen: (frame: FrameRef, connection: ConnectionID)] = [:]
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element else { return }
        // On a connection whose verify requests overflowed their bound, a reply may answer an untracked request.
        if case .verifyReply(let key, "valid", nil) = db, !c.dialbackOverflow, unsolicited.count < 10_000 {
            let seen = Seen(pair: DomainPair(sender: key.to, target: key.from), rs: c.clientAddress, id: key.id)
            if unsolicited[seen] == nil { unsolicited[seen] = (e.firstFrame, c.id) }
        }
        if case .resultReply(let pair, "valid", let x?) = db, x.verifyType == nil,
           let u = unsolicited[Seen(pair: pair, rs: c.serverAddress, id: x.streamID ?? "")] {
            ctx.report(self, c, e.direction, actor: .receiving, frame: e.firstFrame,
                       "The receiving server validated \(pair) on the strength of a db:verify reply it never asked for (\(u.connection), frame \(u.frame.number)): the 2012 unsolicited-dialback attack.",
                       evidence: el.render())
        }
    }
}

/// DB-CORR-4: the OS acts only on db:result replies to its own requests.
final class DBCorr4: Rule {
    let interests: RuleInterests = .all
    let description = RuleDescription(
        id: "DB-CORR-4", title: "Originating server acts on an unsolicited db:result reply", severity: .critical,
        source: "XEP-0220 §2.1.1, §3.1; XSF 2012-08-21",
        firing: [Example.openA + "\nS> <db:result from='b.example' to='a.example' type='valid'/>\n" + Example.message],
        quiet: [Example.clean])
    private var unsolicited: [ConnectionID: Set<DomainPair>] = [:]
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        if case .closed(let c) = input { unsolicited[c.id] = nil; return }
        guard let (e, el, c, db) = input.element else { return }
        if case .resultReply(let pair, "valid", nil) = db, !c.bidi, !c.dialbackOverflow {
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
    let description = RuleDescription(
        id: "DB-CORR-5", title: "Verdict reported on another connection than the one verified", severity: .high,
        source: "XEP-0220 §2.1.2", observability: .crossConnection,
        firing: [Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB + "\n3C> $HDR to='b.example' from='a.example'>\n3S> $HDR from='b.example' to='a.example' id='s3'>\n3S> <db:result from='b.example' to='a.example' type='valid'/>"],
        quiet: [Example.clean])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .resultReply(let pair, let type?, nil) = db, type == "valid" || type == "invalid",
              !c.dialbackOverflow, let x = ctx.model.verifiedAwaitingVerdict(pair, besides: c.id)
        else { return }
        ctx.report(self, c, e.direction, actor: .receiving, frame: e.firstFrame,
                   "The receiving server sent its verdict for \(pair) on \(c.id) (stream id '\(c.streamID ?? "")'), but the verified db:result came on \(x.resultConnection) (stream id '\(x.streamID ?? "")').",
                   evidence: el.render())
    }
}

/// DB-CORR-6: the RS's verdict agrees with the AS's.
final class DBCorr6: Rule {
    let description = RuleDescription(
        id: "DB-CORR-6", title: "Receiving server answers valid although the authoritative server said invalid", severity: .critical,
        source: "RFC3920 §8.3 s10; XEP-0220 §2.1.2, §2.2.1", observability: .crossConnection,
        firing: [Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "type='valid'", with: "type='invalid'") + "\n" + Example.validA],
        quiet: [Example.clean])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .resultReply(_, "valid", let x?) = db, x.verifyType == "invalid" else { return }
        ctx.report(self, c, e.direction, actor: .receiving, frame: e.firstFrame,
                   "The receiving server validated \(x.pair) although the authoritative server answered invalid (\(x.verifyConnection.map(\.description) ?? "?"), frame \(x.verifyReplyFrame?.number ?? 0)).",
                   evidence: el.render())
    }
}

/// DB-CORR-7: once the AS answered, the RS tells the OS.
final class DBCorr7: Rule {
    let description = RuleDescription(
        id: "DB-CORR-7", title: "Authoritative verdict never relayed to the originating server", severity: .medium,
        source: "XEP-0220 §2.2.1; RFC3920 §8.3 s10", observability: .crossConnection,
        firing: [Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB + "\n+20\n" + Example.message],
        quiet: [Example.clean])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, _, db) = input.element, case .verifyReply(_, _, let r?) = db, let x = r.exchange, x.outcome == nil,
              let a = ctx.model.connection(x.resultConnection), a.close == nil else { return }
        let pair = x.pair
        ctx.expect(self, on: a, by: .serverToClient, actor: .receiving, trigger: e.firstFrame, within: ctx.configuration.timers.react,
                   missing: ("The authoritative server answered for \(pair), but the receiving server did not tell the originating server on \(a.id).", el.render(), nil)) { ev in
            guard ev.direction == .serverToClient else { return .pending }
            switch ev.kind {
            case .element(let reply) where reply.isDialback && reply.local == "result" && reply[attribute: "to"] == pair.sender: return .satisfied
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
        firing: [Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "2S> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>", with: "+70\n2C> <presence from='b.example' to='a.example'/>")],
        quiet: [Example.clean])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .verifyRequest(let key, _) = db else { return }
        ctx.expect(self, on: c, by: .serverToClient, actor: .authoritative, trigger: e.firstFrame, within: ctx.configuration.timers.dialback,
                   missing: ("The authoritative server did not answer the db:verify for id '\(key.id)' within \(Int(ctx.configuration.timers.dialback)) s.", el.render(), nil)) { ev in
            guard ev.direction == .serverToClient else { return .pending }
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
    let description = RuleDescription(
        id: "DB-CORR-9", title: "Receiving server answers valid without any visible verification", severity: .medium,
        source: "RFC3920 §8.3 s8–s10; XEP-0220 §2.2.1; XSF 2012-08-21", observability: .crossConnection,
        firing: [Example.openA + "\n" + Example.resultA + "\n" + Example.validA],
        quiet: [Example.clean])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .resultReply(_, "valid", let x?) = db, x.verifyConnection == nil,
              !c.tls, !c.saslSucceeded else { return }
        // A connection from the RS toward the sender domain opened meanwhile means verification was attempted
        // (perhaps inside TLS, where the capture cannot follow it).
        let attempted = ctx.model.openConnections(fromClient: c.serverAddress).contains {
            $0.firstFrame.time >= x.resultFrame.time && $0.initialHeader?.to == x.originating && ($0.tls || $0.damaged[0])
        } || ctx.model.retiredUnreadable(from: c.serverAddress, to: x.originating, since: x.resultFrame.time)
        guard !attempted else { return }
        ctx.report(self, c, e.direction, actor: .receiving, frame: e.firstFrame,
                   "The receiving server answered valid for \(x.pair) with no db:verify for this key anywhere in the capture and no TLS or SASL on the stream (the verification may have travelled outside the capture).",
                   evidence: el.render())
    }
}
