import S2Dialback
import S2Model
import S2XMPP

/// DB-AUTH-1: a db:verify for a domain the AS does not host is refused, never validated.
final class DBAuth1: Rule {
    let scope: RuleScope = .correlation
    let description = RuleDescription(
        id: "DB-AUTH-1", title: "db:verify for a domain the authoritative server does not host is not refused", severity: .high,
        source: "RFC3920 §8.3 s8; XEP-0220 §2.2.2", observability: .userKnowledge,
        firing: ["#!host a.example=10.0.0.1\n@2 10.0.0.2 -> 10.0.0.1\n2C> $HDR to='a.example' from='b.example'>\n2S> $HDR from='a.example' to='b.example' id='s2'>\n2C> <db:verify from='b.example' to='nope.example' id='s1'>k</db:verify>\n2S> ↓<db:verify from='nope.example' to='b.example' id='s1' type='valid'/>"],
        quiet: ["@2 10.0.0.2 -> 10.0.0.1\n2C> $HDR to='a.example' from='b.example'>\n2S> $HDR from='a.example' to='b.example' id='s2'>\n2C> <db:verify from='b.example' to='nope.example' id='s1'>k</db:verify>\n2S> <stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
                Example.clean])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .verifyRequest(let key, _) = db else { return }
        // What the acceptor is known to host, plus the domain its own stream header claims.
        let claimed = c.responseHeader?.from.map(normalizedDomain)
        guard ctx.model.knowsHosted(by: c.serverAddress) || claimed != nil,
              !ctx.model.hosts(c.serverAddress, key.to), claimed != key.to else { return }
        let configured = ctx.model.isHostKnown(c.serverAddress)
        let what = "a db:verify for '\(key.to)', a domain it does not host"
        ctx.expect(self, on: c, by: .serverToClient, actor: .authoritative, trigger: e.firstFrame, within: ctx.configuration.timers.react,
                   missing: ("The authoritative server did not refuse \(what) (expected <host-unknown/> or an item-not-found dialback error).",
                             el.render(), .medium)) { r in
            guard r.direction == .serverToClient else { return .pending }
            switch r.kind {
            case .element(let reply) where reply.isStreamError:
                let cond = reply.streamErrorCondition ?? "?"
                if ["host-unknown", "host-gone", "item-not-found"].contains(cond) { return .satisfied }
                return .violated(severity: .low, message: "The authoritative server answered \(what) with <\(cond)/> instead of <host-unknown/>.",
                                 evidence: reply.render(), frame: r.firstFrame)
            case .element(let reply) where reply.isDialback && reply.local == "verify" && reply[attribute: "id"] == key.id:
                switch reply[attribute: "type"] {
                case "error": return .satisfied
                case "valid":
                    return configured ? .violated(severity: .high, message: "The authoritative server answered type='valid' to \(what).",
                                                  evidence: reply.render(), frame: r.firstFrame) : .satisfied
                default:
                    return configured ? .violated(severity: .medium, message: "The authoritative server answered \(what) with type='\(reply[attribute: "type"] ?? "")' instead of <host-unknown/> or an item-not-found error.",
                                                  evidence: reply.render(), frame: r.firstFrame) : .satisfied
                }
            case .streamClosed: return .satisfied
            default: return .pending
            }
        }
    }
}

/// DB-AUTH-2: the verify `from` is the hostname the RS presented (RFC 3920 only).
final class DBAuth2: Rule {
    let scope: RuleScope = .correlation
    let description = RuleDescription(
        id: "DB-AUTH-2", title: "db:verify 'from' differs from the name the receiving server presented, and is accepted", severity: .low,
        source: "RFC3920 §8.3 s8",
        firing: ["@2 10.0.0.2 -> 10.0.0.1\n2C> $HDR to='a.example' from='b.example'>\n2S> $HDR from='a.example' to='b.example' id='s2'>\n2C> <db:verify from='c.example' to='a.example' id='s1'>k</db:verify>\n2S> ↓<db:verify from='a.example' to='c.example' id='s1' type='invalid'/>"],
        quiet: [Example.clean,
                Example.openA + "\n" + Example.resultA + "\n" + Example.verifyB.replacingOccurrences(of: "2C> $HDR to='a.example' from='b.example'>", with: "2C> $HDR to='a.example' from='B.Example'>")])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .verifyReply(let key, let type, let request?) = db, type != "error",
              let presented = c.initialHeader?.from, !presented.isEmpty, request.key.from != normalizedDomain(presented),
              !c.hasValidatedSender(request.key.from),
              // The check is RFC 3920's: XEP-0220 dropped it.
              ctx.profile(of: c.address(of: e.direction)) != .xep0220 else { return }
        ctx.report(self, c, e.direction, actor: .authoritative, frame: e.firstFrame,
                   "The authoritative server answered a db:verify from '\(key.from)' although the receiving server presented itself as '\(presented)' (RFC 3920 demands <invalid-from/>; XEP-0220 dropped the check).",
                   evidence: el.render())
    }
}

/// DB-AUTH-3: with the dialback secret, the verdict must match the XEP-0185 key.
final class DBAuth3: Rule {
    let description = RuleDescription(
        id: "DB-AUTH-3", title: "Authoritative verdict contradicts the key (checked with the dialback secret)", severity: .critical,
        source: "RFC3920 §8.3 s8–s9; XEP-0220 §2.2.2; XEP-0185 §2", observability: .userKnowledge,
        firing: ["#!secret a.example=wrong\n" + Example.clean.replacingOccurrences(of: "2S> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>", with: "2S> ↓<db:verify from='a.example' to='b.example' id='s1' type='valid'/>")],
        quiet: ["#!secret a.example=s3cr3t\n" + Example.clean])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, el, c, db) = input.element, case .verifyReply(_, let type, let request?) = db,
              type == "valid" || type == "invalid", let secret = ctx.configuration.secrets[request.key.to] else { return }
        let expected = DialbackKey.generate(secret: secret, receiving: request.key.from, originating: request.key.to, streamID: request.key.id)
        let right = expected == request.keyText.lowercased()
        if type == "valid" && !right {
            ctx.report(self, c, e.direction, actor: .authoritative, frame: e.firstFrame,
                       "The authoritative server for '\(request.key.to)' answered valid for a key that is not the XEP-0185 key for (\(request.key.from), \(request.key.to), id '\(request.key.id)') under the configured secret.",
                       evidence: el.render())
        } else if type == "invalid" && right {
            ctx.report(self, severity: .high, c, e.direction, actor: .authoritative, frame: e.firstFrame,
                       "The authoritative server for '\(request.key.to)' answered invalid for the correct XEP-0185 key.",
                       evidence: el.render())
        }
    }
}
