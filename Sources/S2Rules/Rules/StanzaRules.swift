import S2Dialback
import S2Model
import S2XMPP

/// STANZA-ADDR-1 and -2: every s2s stanza has valid `to` and `from`.
final class StanzaAddr: Rule {
    let interests: RuleInterests = .all
    let attribute: String
    /// Whether the rule is about `to` (else `from`), decided once: it is asked for every stanza.
    private let isTo: Bool
    let description: RuleDescription
    init(attribute: String) {
        self.attribute = attribute
        isTo = attribute == "to"
        description = attribute == "to"
            ? RuleDescription(id: "STANZA-ADDR-1", title: "Stanza without a valid 'to'", severity: .high,
                              source: "RFC3920 §9.1.1; RFC6120 §8.1.1.2, §4.9.3.7",
                              firing: [Example.validated + "\nC> ↓<message from='u@a.example'><body>x</body></message>"],
                              quiet: [Example.clean,
                                      // A resource may hold '@' and '/'.
                                      Example.validated + "\nC> <message from='u@a.example' to='v@B.example/res/with@at'><body>x</body></message>"])
            : RuleDescription(id: "STANZA-ADDR-2", title: "Stanza without a valid 'from'", severity: .high,
                              source: "RFC3920 §9.1.2; RFC6120 §8.1.2.2",
                              firing: [Example.validated + "\nC> ↓<message to='v@b.example'><body>x</body></message>"],
                              quiet: [Example.clean,
                                      Example.validated + "\nC> <message from='U@A.EXAMPLE/r' to='v@b.example'><body>x</body></message>"])
    }
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, el.isStanza, (isTo ? el.toDomain : el.fromDomain) == nil else { return }
        let v = el[attribute: attribute]
        ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                   v == nil ? "A <\(el.local)/> on an s2s stream has no '\(attribute)' address." : "A <\(el.local)/> has an unusable '\(attribute)' address '\(v!)'.",
                   evidence: el.render())
    }
}

/// STANZA-ADDR-3: a stanza missing `to`/`from` is answered with `<improper-addressing/>`.
final class StanzaAddr3: Rule {
    let interests: RuleInterests = .all
    let description = RuleDescription(
        id: "STANZA-ADDR-3", title: "Receiver does not answer a badly addressed stanza with <improper-addressing/>", severity: .medium,
        source: "RFC3920 §8.3, §9.1.1–9.1.2",
        firing: [Example.validated + "\nC> <message from='u@a.example'><body>x</body></message>\nS> ↓<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
                 Example.validated + "\nC> ↓<message from='u@a.example'><body>x</body></message>\n+15\n" + Example.message],
        quiet: [Example.validated + "\nC> <message from='u@a.example'><body>x</body></message>\nS> <stream:error><improper-addressing xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\nS> </stream:stream>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, el.isStanza else { return }
        let to = el[attribute: "to"], from = el[attribute: "from"]
        let bad = (to ?? "").isEmpty || (from ?? "").isEmpty
        guard bad else { return }
        demandStreamError(self, ctx, c, reactor: e.direction.reversed, actor: e.direction.reversed.senderActor, trigger: e.firstFrame,
                          conditions: ["improper-addressing"], what: "a stanza without '\((to ?? "").isEmpty ? "to" : "from")'",
                          keepSeverity: .medium, otherSeverity: .low)
    }
}

/// The from-domain of a stanza checked against what the connection validated.
enum StanzaAuthorization {
    case fine
    /// The connection's validated pairs are not known (mid-stream pickup, loss, TLS).
    case unknown(Unobserved)
    /// Nothing was validated yet, or the pair's own db:result is still pending (piggybacking):
    /// the originating server sent too early (DB-RES-3), nothing was spoofed.
    case beforeValidation(DomainPair)
    case notValidated(String)
    case wrongTarget(DomainPair)

    /// The judgement of the current event's stanza: several rules ask about it in a row, so the
    /// context keeps the verdict for the event it was computed on (`el` is that event's element).
    static func judge(_ el: XMLElement, _ c: ConnectionModel, _ d: Direction, _ ctx: RuleContext) -> StanzaAuthorization {
        if ctx.stanzaAuthorizationSerial == ctx.eventSerial { return ctx.stanzaAuthorization }
        let verdict = compute(el, c, d)
        ctx.stanzaAuthorization = verdict
        ctx.stanzaAuthorizationSerial = ctx.eventSerial
        return verdict
    }

    /// Initiator stanzas only: the acceptor's side of a bidi connection is BIDI-2's.
    private static func compute(_ el: XMLElement, _ c: ConnectionModel, _ d: Direction) -> StanzaAuthorization {
        guard d == .clientToServer, el.isStanza, let f = el.fromDomain, let t = el.toDomain else { return .fine }
        if let why = c.unobserved { return .unknown(why) }
        let pair = DomainPair(normalizedSender: f, target: t)
        if c.saslSucceeded {
            return c.hasValidatedSender(f) ? .fine : .notValidated(f)
        }
        if c.isValidated(pair) { return .fine }
        // On a bidi connection the initiator may also send for the inverse of the acceptor's pairs.
        if c.bidi && c.validated.serverToClient.contains(DomainPair(normalizedSender: t, target: f)) { return .fine }
        if c.validated.clientToServer.isEmpty || c.pendingResults.clientToServer[pair] != nil { return .beforeValidation(pair) }
        if !c.hasValidatedSender(f) { return .notValidated(f) }
        return .wrongTarget(pair)
    }

    /// The stanza's authorization, or nil after recording a not-judged occasion for `rule` when
    /// the connection's state is not known.
    static func judged(_ rule: Rule, _ el: XMLElement, _ c: ConnectionModel, _ e: XMPPEvent, _ ctx: RuleContext) -> StanzaAuthorization? {
        let v = judge(el, c, e.direction, ctx)
        if case .unknown(let why) = v {
            ctx.skip(rule.description, c.id, e.firstFrame, why)
            return nil
        }
        return v
    }
}

/// STANZA-ADDR-4: the from-domain is validated on this stream.
final class StanzaAddr4: Rule {
    /// Judges what the initiator sends only.
    let interests: RuleInterests = RuleInterests.all.subtracting(.acceptorStanza)
    let description = RuleDescription(
        id: "STANZA-ADDR-4", title: "Stanza from a domain not validated on this stream (spoofed 'from')", severity: .critical,
        source: "RFC3920 §8.3, §9.1.2; RFC6120 §8.1.2.2, §4.9.3.9",
        firing: [Example.validated + "\nC> ↓<message from='mallory@evil.example' to='v@b.example'><body>x</body></message>"],
        quiet: [Example.clean,
                // Domains compare case-insensitively (RFC 7622 §3.2).
                Example.validated + "\nC> <message from='U@A.Example/Home' to='v@B.EXAMPLE'><body>x</body></message>",
                // Piggybacking: the pair's own db:result is pending; that is DB-RES-3, not a spoof.
                Example.validated + "\nC> <db:result from='rooms.a.example' to='b.example'>\(Example.key)</db:result>\nC> <message from='x@rooms.a.example' to='v@b.example'/>",
                // Picked up mid-stream: what was validated before the capture is unknown.
                Example.midstream + "\nC> <message from='mallory@evil.example' to='v@b.example'><body>x</body></message>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, el.isStanza, e.direction == .clientToServer,
              case .notValidated(let f)? = StanzaAuthorization.judged(self, el, c, e, ctx) else { return }
        ctx.report(self, c, e.direction, actor: .originating, frame: e.firstFrame,
                   "A <\(el.local)/> claims to come from '\(f)', a domain never validated on this stream (validated: \(c.validatedSenders().sorted().joined(separator: ", "))).",
                   evidence: el.render())
    }
}

/// STANZA-ADDR-5: an unvalidated from-domain is answered with `<invalid-from/>`.
final class StanzaAddr5: Rule {
    /// Judges what the initiator sends only.
    let interests: RuleInterests = RuleInterests.all.subtracting(.acceptorStanza)
    let description = RuleDescription(
        id: "STANZA-ADDR-5", title: "Receiver does not answer a spoofed 'from' with <invalid-from/>", severity: .high,
        source: "RFC3920 §8.3, §9.1.2",
        firing: [Example.validated + "\nC> <message from='mallory@evil.example' to='v@b.example'><body>x</body></message>\nS> ↓<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"],
        quiet: [Example.validated + "\nC> <message from='mallory@evil.example' to='v@b.example'><body>x</body></message>\nS> <stream:error><invalid-from xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\nS> </stream:stream>",
                // A stanza sent before its pair's piggybacked db:result was answered may be dropped silently (RFC 3920 §8.3 s10).
                Example.validated + "\nC> <db:result from='rooms.a.example' to='b.example'>\(Example.key)</db:result>\nC> <message from='x@rooms.a.example' to='v@b.example'/>\n+15\n" + Example.message])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, el.isStanza, e.direction == .clientToServer,
              case .notValidated(let f)? = StanzaAuthorization.judged(self, el, c, e, ctx) else { return }
        demandStreamError(self, ctx, c, reactor: .serverToClient, actor: .receiving, trigger: e.firstFrame,
                          conditions: ["invalid-from"], what: "a stanza from the unvalidated domain '\(f)'",
                          keepSeverity: .high, otherSeverity: .low)
    }
}

/// STANZA-ADDR-6: the to-domain is the target of a pair validated with the from-domain.
final class StanzaAddr6: Rule {
    /// Judges what the initiator sends only.
    let interests: RuleInterests = RuleInterests.all.subtracting(.acceptorStanza)
    let description = RuleDescription(
        id: "STANZA-ADDR-6", title: "Stanza for a domain pair that was not validated", severity: .high,
        source: "RFC6120 §8.1.1.2, §4.9.3.6; XEP-0220 §1.4",
        firing: [Example.validated + "\nC> ↓<message from='u@a.example' to='v@other.example'><body>x</body></message>"],
        quiet: [Example.clean,
                Example.validated + "\nC> <message from='u@a.example' to='Juliet@B.Example'><body>x</body></message>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, el.isStanza, e.direction == .clientToServer,
              case .wrongTarget(let pair)? = StanzaAuthorization.judged(self, el, c, e, ctx) else { return }
        ctx.report(self, c, e.direction, actor: .originating, frame: e.firstFrame,
                   "A <\(el.local)/> for \(pair) travels on a stream where only \(c.validated.clientToServer.map(\.description).sorted().joined(separator: ", ")) was validated.",
                   evidence: el.render())
    }
}

/// STANZA-NS-1: s2s stanzas are unprefixed `jabber:server` elements.
final class StanzaNS1: Rule {
    let interests: RuleInterests = .all
    let description = RuleDescription(
        id: "STANZA-NS-1", title: "Stanza in jabber:client or with a prefix", severity: .medium,
        source: "RFC6120 §4.8.3, §4.9.3.10, §4.9.3.24; RFC3920 §11.2.2",
        firing: [Example.validated + "\nC> ↓<message xmlns='jabber:client' from='u@a.example' to='v@b.example'/>",
                 Example.midstream + "\nC> ↓<message xmlns='jabber:client' from='u@a.example' to='v@b.example'/>"],
        quiet: [Example.clean,
                // In a stream picked up mid-stream the default namespace is assumed, not seen.
                "@1 10.0.0.1 -> 10.0.0.2 midstream\nC> <presence from='u@a.example/r' to='v@b.example'/>\nC> <presence from='u@a.example/r' to='v@b.example'/>\nC> <c:message from='u@a.example' to='v@b.example'/>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, el.isStanza else { return }
        // Without the sender's header, only a namespace the element declares itself is evidence.
        if !c.complete[e.direction] && !el.declarations.contains(where: { $0.prefix == nil || $0.prefix == el.prefix }) {
            ctx.skip(description, c.id, e.firstFrame, c.missing[e.direction] ?? .gap)
            return
        }
        if el.namespace == Namespace.client {
            ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                       "A <\(el.local)/> on an s2s stream is qualified by jabber:client; server-to-server stanzas must be in jabber:server.",
                       evidence: el.render())
        } else if let p = el.prefix {
            ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                       "A stanza is sent as <\(p):\(el.local)/>; jabber:server stanzas must not be prefixed.", evidence: el.render())
        }
    }
}

/// STANZA-IQ-1: IQ syntax.
final class StanzaIQ1: Rule {
    let interests: RuleInterests = .all
    let description = RuleDescription(
        id: "STANZA-IQ-1", title: "Malformed IQ (id, type, child count)", severity: .low,
        source: "RFC3920 §9.2.3; RFC6120 §8.2.3",
        firing: [Example.validated + "\nC> ↓<iq from='a.example' to='b.example' type='get'/>",
                 Example.validated + "\nC> ↓<iq from='a.example' to='b.example' id='1' type='fetch'><ping xmlns='urn:xmpp:ping'/></iq>"],
        quiet: [Example.validated + "\nC> <iq from='a.example' to='b.example' id='1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, _) = input.element, el.isStanza, el.local == "iq", !el.truncated else { return }
        var problems: [String] = []
        if (el[attribute: "id"] ?? "").isEmpty { problems.append("no 'id'") }
        let type = el[attribute: "type"]
        let payload = el.children.filter { $0.local != "error" }.count
        switch type {
        case "get", "set": if el.children.count != 1 { problems.append("type='\(type!)' with \(el.children.count) children (exactly one required)") }
        case "result": if payload > 1 { problems.append("type='result' with \(payload) children (at most one)") }
        case "error": if el.child("error") == nil { problems.append("type='error' without <error/>") }
        case nil: problems.append("no 'type'")
        default: problems.append("type='\(type!)'")
        }
        guard !problems.isEmpty else { return }
        ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                   "An IQ is malformed: \(problems.joined(separator: ", ")).", evidence: el.render())
    }
}

/// STANZA-IQ-2: every get/set gets exactly one result or error (on either connection).
final class StanzaIQ2: Rule {
    let scope: RuleScope = .correlation
    let interests: RuleInterests = .all
    let description = RuleDescription(
        id: "STANZA-IQ-2", title: "IQ get/set never answered", severity: .low,
        source: "RFC3920 §9.2.3; RFC6120 §8.2.3", observability: .crossConnection,
        firing: [Example.validated + "\nC> ↓<iq from='a.example' to='b.example' id='p1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>\n+70\n" + Example.message],
        quiet: [Example.validated + "\nC> <iq from='a.example' to='b.example' id='p1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>\n" + "@3 10.0.0.2 -> 10.0.0.1\n3C> $HDR to='a.example' from='b.example'>\n3S> $HDR from='a.example' to='b.example' id='s3'>\n3C> <iq from='b.example' to='a.example' id='p1' type='result'/>\n+70\n" + Example.message])
    /// What a pending get/set keeps: its key, where it was seen and a short evidence string — not
    /// the element (a peer decides how many are pending at once). Freed as soon as it is answered.
    struct Pending {
        var key: Key
        var frame: FrameRef
        var connection: ConnectionID
        var evidence: String
        /// Losses seen in the capture when the request came: the answer may travel on any
        /// connection, so a loss anywhere meanwhile may have taken it.
        var losses: Int
    }
    struct Key: Hashable {
        var id: String
        var from: String
        var to: String
    }
    /// The requests still waiting, by serial; answered and replaced ones leave at once.
    private let pinnedWaitingRequests = PinnedValue<[Int: Pending]>([:])
    /// Pinned (`PinnedValue`): mutated on the hot path, growing inside the access.
    private var waitingRequests: [Int: Pending] {
        unsafeAddress { UnsafePointer(pinnedWaitingRequests.pointer) }
        unsafeMutableAddress { pinnedWaitingRequests.pointer }
    }
    /// Every request's serial and time in arrival order (so in deadline order): 16 bytes each for
    /// the IQ timer's window, whatever became of the request.
    private var deadlines: [(serial: Int, time: Timestamp)] = []
    private var head = 0
    /// The pending request each (id, from, to) waits on, by serial. A get/set that repeats the key of
    /// one still pending replaces it: a reply cannot say which of the two it answers, so the earlier
    /// one is not judged (never a finding) and only the later one waits.
    private let pinnedIndex = PinnedValue<[Key: Int]>([:])
    /// Pinned (`PinnedValue`): mutated on the hot path, growing inside the access.
    private var index: [Key: Int] {
        unsafeAddress { UnsafePointer(pinnedIndex.pointer) }
        unsafeMutableAddress { pinnedIndex.pointer }
    }
    private var serials = 0
    /// Requests waiting per connection (the per-connection cap).
    private let pinnedWaiting = PinnedValue<[ConnectionID: Int]>([:])
    /// Pinned (`PinnedValue`): mutated on the hot path, growing inside the access.
    private var waiting: [ConnectionID: Int] {
        unsafeAddress { UnsafePointer(pinnedWaiting.pointer) }
        unsafeMutableAddress { pinnedWaiting.pointer }
    }
    private var capReported: Set<ConnectionID> = []
    private var globalCapReported = false

    /// Bounds of the pending set (docs/LIMITS.md): a request beyond either is not tracked, counted
    /// as not judged, with one `limit-reached` anomaly per connection (per run for the global cap).
    static let maxPending = 50_000
    static let maxPendingPerConnection = 10_000
    /// Characters of evidence kept per pending request.
    static let evidenceLength = XMLElement.shortEvidenceLength

    /// Approximate bytes one pending request holds (its entry, its index slot, short strings).
    static let bytesPerPending = 96 + 64 + evidenceLength
    var pendingCount: Int { index.count }

    func check(_ input: RuleInput, _ ctx: RuleContext) {
        if let (e, el, c, _) = input.element, el.isStanza, el.local == "iq", let id = el[attribute: "id"] {
            let from = el.normalizedFrom, to = el.normalizedTo
            switch el[attribute: "type"] {
            case "get", "set":
                let key = Key(id: id, from: from, to: to)
                if let replaced = index.removeValue(forKey: key) {
                    // The earlier request with this key is superseded (see `index`).
                    if let p = waitingRequests.removeValue(forKey: replaced) { release(p.connection) }
                    ctx.skip(description, c.id, e.firstFrame, .reusedID)
                }
                let onConnection = waiting[c.id, default: 0]
                if index.count >= Self.maxPending || onConnection >= Self.maxPendingPerConnection {
                    ctx.skip(description, c.id, e.firstFrame, .limit)
                    if onConnection >= Self.maxPendingPerConnection {
                        if capReported.insert(c.id).inserted {
                            ctx.limitReached(c.id, frame: e.firstFrame,
                                             "more than \(Self.maxPendingPerConnection) IQ get/set requests wait for an answer on this connection; further ones are not judged (STANZA-IQ-2)")
                        }
                    } else if !globalCapReported {
                        globalCapReported = true
                        ctx.limitReached(c.id, frame: e.firstFrame,
                                         "more than \(Self.maxPending) IQ get/set requests wait for an answer; further ones are not judged (STANZA-IQ-2)")
                    }
                    break
                }
                serials += 1
                index[key] = serials
                waiting[c.id] = onConnection + 1
                waitingRequests[serials] = Pending(key: key, frame: e.firstFrame, connection: c.id,
                                                   evidence: el.shortEvidence, losses: ctx.lossEvents)
                deadlines.append((serials, e.firstFrame.time))
            case "result", "error":
                if let serial = index.removeValue(forKey: Key(id: id, from: to, to: from)),
                   let p = waitingRequests.removeValue(forKey: serial) {
                    release(p.connection)
                }
            default: break
            }
        }
        let now = ctx.now
        while head < deadlines.count, now.secondsSince(deadlines[head].time) > ctx.configuration.timers.iq {
            let serial = deadlines[head].serial
            head += 1
            guard let p = waitingRequests.removeValue(forKey: serial) else { continue }  // answered or replaced
            index[p.key] = nil
            release(p.connection)
            if ctx.lossEvents != p.losses {
                ctx.skip(description, p.connection, p.frame, .gap)
                continue
            }
            ctx.report(description, severity: nil, p.connection, .clientToServer, actor: .acceptor, frame: p.frame,
                       "An IQ get/set got no result or error on any connection within \(Int(ctx.configuration.timers.iq)) s.",
                       evidence: p.evidence)
        }
        if case .finished = input {
            // Still waiting when the capture ended: the answer was not yet due.
            for d in deadlines[head...] {
                if let p = waitingRequests.removeValue(forKey: d.serial) { ctx.skip(description, p.connection, p.frame, .captureEnded) }
            }
        }
        if head > 1024 && head * 2 > deadlines.count {
            deadlines.removeFirst(head)
            head = 0
        }
    }

    private func release(_ c: ConnectionID) {
        guard let n = waiting[c] else { return }
        if n <= 1 { waiting[c] = nil; capReported.remove(c) } else { waiting[c] = n - 1 }
    }
}
