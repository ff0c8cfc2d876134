import S2Dialback
import S2Model
import S2XMPP

/// STREAM-HDR-1: the root is `{http://etherx.jabber.org/streams}stream`.
final class StreamHdr1: Rule {
    let description = RuleDescription(
        id: "STREAM-HDR-1", title: "Stream root is not <stream:stream> in the streams namespace", severity: .high,
        source: "RFC3920 §4.5, §11.2.1; RFC6120 §4.8.1",
        firing: ["C> ↓<stream:stream xmlns='jabber:server' xmlns:stream='http://example.com/streams' to='b.example'>",
                 "C> ↓<stream xmlns='jabber:server' to='b.example'>"],
        quiet: [Example.clean,
                // Another prefix bound to the streams namespace is still the streams namespace.
                "C> <s:stream xmlns='jabber:server' xmlns:s='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='b.example' from='a.example' version='1.0'>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, h, c) = input.header, !h.isStreamRoot else { return }
        // Leading elements that are not headers at all belong to DB-RCV-1 and STREAM-ERR-6.
        if e.direction == .serverToClient && h.local != "stream" { return }
        ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                   "The \(e.direction.sideName)'s stream root is {\(h.namespace)}\(h.local), not {\(Namespace.streams)}stream.",
                   evidence: h.render())
    }
}

/// STREAM-HDR-2: a bad streams namespace is answered with `<invalid-namespace/>` and a close.
final class StreamHdr2: Rule {
    let description = RuleDescription(
        id: "STREAM-HDR-2", title: "Receiver accepts a header in the wrong streams namespace", severity: .medium,
        source: "RFC6120 §4.8.1; RFC3920 §8.3 s2, s3, s6, s7",
        firing: ["C> <stream:stream xmlns='jabber:server' xmlns:stream='http://example.com/streams' xmlns:db='jabber:server:dialback' to='b.example'>\nS> $HDR from='b.example' id='x1'>\nS> ↓<stream:features/>"],
        quiet: ["C> <stream:stream xmlns='jabber:server' xmlns:stream='http://example.com/streams' to='b.example'>\nS> $HDR from='b.example' id='x1'>\nS> <stream:error><invalid-namespace xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\nS> </stream:stream>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, h, c) = input.header, !h.isStreamRoot, h.local == "stream" else { return }
        demandStreamError(self, ctx, c, reactor: e.direction.reversed, actor: e.direction.reversed.senderActor, trigger: e.firstFrame,
                          conditions: ["invalid-namespace", "bad-format"], what: "a stream header in the wrong namespace",
                          keepSeverity: .medium, otherSeverity: .low)
    }
}

/// STREAM-HDR-3: both headers declare the default namespace `jabber:server`, identically.
final class StreamHdr3: Rule {
    let description = RuleDescription(
        id: "STREAM-HDR-3", title: "Default namespace missing, not jabber:server, or different in the two headers", severity: .high,
        source: "RFC3920 §4.5, §11.2.2; RFC6120 §4.8.2, §4.8.3, §4.9.3.10",
        firing: ["C> ↓<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='b.example' version='1.0'>",
                 "C> ↓<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='b.example' version='1.0'>"],
        quiet: [Example.clean,
                // The declarations in another order.
                "C> <stream:stream to='b.example' xmlns:stream='http://etherx.jabber.org/streams' from='a.example' version='1.0' xmlns:db='jabber:server:dialback' xmlns='jabber:server'>\nS> $HDR from='b.example' to='a.example' id='s1'>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, h, c) = input.header, h.isStreamRoot else { return }
        let ns = h.defaultNamespace
        var problem: String?
        if ns == nil {
            problem = "declares no default namespace (xmlns='jabber:server' is required on s2s)"
        } else if ns != Namespace.server {
            problem = "declares the default namespace '\(ns!)' instead of 'jabber:server'"
        } else if let other = c.header(e.direction.reversed), other.isStreamRoot, let o = other.defaultNamespace, o != ns {
            problem = "declares '\(ns!)' while the other header declared '\(o)'"
        }
        guard let problem else { return }
        ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                   "The \(e.direction.sideName)'s stream header \(problem).", evidence: h.render())
    }
}

/// STREAM-HDR-4: features and errors are in the streams namespace; the prefix `stream` is SHOULD.
final class StreamHdr4: Rule {
    let description = RuleDescription(
        id: "STREAM-HDR-4", title: "<features>/<error> not qualified by the streams namespace", severity: .medium,
        source: "RFC3920 §11.2.1; RFC6120 §4.8.5, §4.9.3.2",
        firing: ["C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' id='x1'>\nS> ↓<features/>"],
        quiet: [Example.clean, Example.midstream + "\nS> <features/>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        if let (e, h, c) = input.header, h.isStreamRoot, let p = h.prefix, p != "stream" {
            ctx.report(self, severity: .info, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                       "The \(e.direction.sideName) binds the streams namespace to the prefix '\(p)' instead of 'stream' (allowed, but some peers accept only 'stream').",
                       evidence: h.render())
            return
        }
        guard let (e, el, c, _) = input.element, el.local == "features" || el.local == "error",
              el.namespace != Namespace.streams, el.namespace == Namespace.server || el.namespace == Namespace.client,
              // The namespace an unprefixed element is in comes from a header the capture must have seen.
              ctx.canJudge(self, c, direction: e.direction, at: e.firstFrame) else { return }
        ctx.report(self, c, e.direction, actor: e.direction.senderActor, frame: e.firstFrame,
                   "The \(e.direction.sideName) sent <\(el.local)/> in '\(el.namespace)' instead of the streams namespace (it must be <stream:\(el.local)/>).",
                   evidence: el.render())
    }
}

/// STREAM-HDR-5: the initial header carries `to` (and, under RFC 6120, `from`).
final class StreamHdr5: Rule {
    let description = RuleDescription(
        id: "STREAM-HDR-5", title: "Initial stream header without 'to' (or 'from')", severity: .medium,
        source: "RFC6120 §4.7.1, §4.7.2; RFC3920 §4.4, §8.3 s2",
        firing: ["C> ↓$HDR from='a.example'>"],
        quiet: [Example.clean,
                // A legacy (version-less) initial header with both addresses.
                "C> <stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='b.example' from='a.example'>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, h, c) = input.header, e.direction == .clientToServer, h.isStreamRoot else { return }
        let legacy = h.version == nil
        if h.to == nil || h.to == "" {
            ctx.report(self, severity: legacy ? .info : .medium, c, e.direction, actor: .initiator, frame: e.firstFrame,
                       "The initial stream header has no 'to' naming the domain the initiator wants to reach\(legacy ? " (legacy version-less stream)" : "").",
                       evidence: h.render())
        }
        if h.from == nil || h.from == "" {
            ctx.report(self, severity: .info, c, e.direction, actor: .initiator, frame: e.firstFrame,
                       "The initial stream header has no 'from' (RFC 6120 asks s2s initiators to name their domain).",
                       evidence: h.render())
        }
    }
}

/// STREAM-HDR-6: an initial `to` the acceptor does not host gets `<host-unknown/>`.
final class StreamHdr6: Rule {
    let description = RuleDescription(
        id: "STREAM-HDR-6", title: "Acceptor continues a stream addressed to a domain it does not host", severity: .medium,
        source: "RFC3920 §4.7.3; RFC6120 §4.9.3.5–6", observability: .userKnowledge,
        firing: [],
        quiet: [Example.clean,
                // Hosted, in another case and with a trailing dot.
                "#!host b.example=10.0.0.2\nC> $HDR to='B.Example.' from='a.example'>\nS> $HDR from='b.example' id='x1'>\nS> <stream:features/>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, h, c) = input.header, e.direction == .clientToServer, let to = h.to, !to.isEmpty,
              ctx.model.isHostKnown(c.serverAddress), !ctx.model.isConfiguredHost(c.serverAddress, to) else { return }
        demandStreamError(self, ctx, c, reactor: .serverToClient, actor: .acceptor, trigger: e.firstFrame,
                          conditions: ["host-unknown", "host-gone"], what: "a stream to '\(to)', a domain it does not host",
                          keepSeverity: .medium, otherSeverity: .low)
    }
}

/// STREAM-HDR-7: the response header carries `from` (and, RFC 6120, `to` = the initial `from`).
final class StreamHdr7: Rule {
    let description = RuleDescription(
        id: "STREAM-HDR-7", title: "Response stream header without 'from' (or with a wrong 'to')", severity: .medium,
        source: "RFC3920 §4.4; RFC6120 §4.7.1, §4.7.2",
        firing: ["C> $HDR to='b.example' from='a.example'>\nS> ↓$HDR id='x1'>"],
        quiet: [Example.clean,
                "#!host b.example=10.0.0.2\nC> $HDR to='b.example' from='a.example'>\nS> $HDR from='B.EXAMPLE' to='A.Example' id='x1'>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        // A header answering no stream (HTTP or a TLS ClientHello on the port, answered with an
        // error) opens nothing its addresses could qualify.
        guard let (e, h, c) = input.header, e.direction == .serverToClient, h.isStreamRoot, c.initialHeader != nil else { return }
        if h.from == nil || h.from == "" {
            ctx.report(self, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                       "The response stream header has no 'from' naming the acceptor's domain.", evidence: h.render())
        } else if ctx.model.isHostKnown(c.serverAddress), !ctx.model.isConfiguredHost(c.serverAddress, h.from!) {
            ctx.report(self, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                       "The response header's 'from' (\(h.from!)) is not a domain this server hosts.", evidence: h.render())
        }
        if h.version == "1.0", let initFrom = c.initialHeader?.from, !initFrom.isEmpty,
           h.to.map(normalizedDomain) != normalizedDomain(initFrom) {
            ctx.report(self, severity: .low, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                       "The response header's 'to' is \(h.to.map { "'\($0)'" } ?? "missing"), not the initial header's 'from' '\(initFrom)' (RFC 6120 §4.7.2).",
                       evidence: h.render())
        }
    }
}

/// STREAM-HDR-8: the response carries a non-empty `id`; the initial header carries none.
final class StreamHdr8: Rule {
    let description = RuleDescription(
        id: "STREAM-HDR-8", title: "Response header without a stream id (or initial header with one)", severity: .high,
        source: "RFC6120 §4.7.3; RFC3920 §4.4, §8.3 s3",
        firing: ["C> $HDR to='b.example' from='a.example'>\nS> ↓$HDR from='b.example' to='a.example'>",
                 "C> ↓$HDR to='b.example' from='a.example' id='abc'>"],
        quiet: [Example.clean,
                // A restart after SASL: a new id for the new stream.
                "C> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='x1'>\nS> <stream:features/>\nS> <success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>\nC> $HDR to='b.example' from='a.example'>\nS> $HDR from='b.example' to='a.example' id='x2'>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, h, c) = input.header, h.isStreamRoot else { return }
        if e.direction == .serverToClient {
            // No key can bind to a stream that answers no stream.
            if (h.id == nil || h.id == ""), c.initialHeader != nil {
                ctx.report(self, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                           "The response stream header has \(h.id == nil ? "no" : "an empty") 'id': dialback keys are bound to the stream id, so dialback on this stream is impossible.",
                           evidence: h.render())
            }
        } else if let id = h.id {
            ctx.report(self, severity: id.isEmpty ? .info : .low, c, e.direction, actor: .initiator, frame: e.firstFrame,
                       id.isEmpty ? "The initial stream header carries an empty 'id' (Prosody does this; the receiver ignores it)."
                                  : "The initial stream header carries id='\(id)'; only the responding entity assigns stream ids.",
                       evidence: h.render())
        }
    }
}

/// STREAM-HDR-9: stream ids are unique per server.
final class StreamHdr9: Rule {
    let scope: RuleScope = .correlation
    let description = RuleDescription(
        id: "STREAM-HDR-9", title: "A server issued the same stream id twice", severity: .high,
        source: "RFC3920 §4.4, §8.1; RFC6120 §4.7.3, §4.3.3", observability: .crossConnection,
        firing: [Example.openA + "\n2C> $HDR to='b.example' from='a.example'>\n2S> ↓$HDR from='b.example' to='a.example' id='s1'>"],
        quiet: [Example.clean,
                // The same id from two different servers.
                Example.openA + "\n@2 10.0.0.3 -> 10.0.0.1\n2C> $HDR to='a.example' from='c.example'>\n2S> $HDR from='a.example' to='c.example' id='s9'>\n@3 10.0.0.1 -> 10.0.0.3\n3C> $HDR to='c.example' from='a.example'>\n3S> $HDR from='c.example' to='a.example' id='s1'>"])
    func check(_ input: RuleInput, _ ctx: RuleContext) {
        guard let (e, h, c) = input.header, e.direction == .serverToClient, let id = h.id, !id.isEmpty,
              let first = ctx.model.firstConnection(issuing: id, at: c.serverAddress) else { return }
        let earlier = c.streams.filter { $0.direction == .serverToClient && $0.header.id == id }.count
        guard first != c.id || earlier > 1 else { return }
        // The same connection seen in two inputs (two capture points of one conversation) is not a reuse.
        if let f = ctx.model.summary(of: first), f.id != c.id, f.client == c.client, f.server == c.server,
           f.firstFrame.time == c.firstFrame.time { return }
        ctx.report(self, c, e.direction, actor: .acceptor, frame: e.firstFrame,
                   "The server at \(c.serverAddress) issued stream id '\(id)' again (first on \(first)); stream ids must be unique and unpredictable, or dialback keys can be replayed.",
                   evidence: h.render())
    }
}
