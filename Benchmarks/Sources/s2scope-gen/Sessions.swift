/// TCP connections and the s2s sessions that drive them.
///
/// A `Link` joins two domains; each direction of federation is a `Session` (S → T): connection A
/// from S's server to T's (db:result, then stanzas) and, ejabberd style, a verify-only connection
/// B from T's server to S's authoritative server (db:verify, reply, close). A session queues the
/// frames of its next step with absolute times; the scheduler emits one frame at a time across all
/// sessions, so connections interleave at segment granularity.

final class Conn {
    let client: Host, server: Host
    let cport: UInt16, sport: UInt16
    var cseq: UInt32, sseq: UInt32
    var cIPID: UInt16, sIPID: UInt16

    init(client: Host, server: Host, cport: UInt16, sport: UInt16, rng: inout Rng) {
        self.client = client
        self.server = server
        self.cport = cport
        self.sport = sport
        cseq = UInt32(truncatingIfNeeded: rng.next())
        sseq = UInt32(truncatingIfNeeded: rng.next())
        cIPID = UInt16(truncatingIfNeeded: rng.next())
        sIPID = UInt16(truncatingIfNeeded: rng.next())
    }
}

/// A frame waiting in a session's queue; payload is a range of the session's buffer.
struct PFrame {
    var time: Double
    var conn: Conn
    var fromClient: Bool
    var flags: UInt8
    var seq: UInt32
    var ack: UInt32
    var start: Int
    var length: Int
}

/// What the generator puts in on purpose, and the rule that must fire for it.
enum Injection: Int, CaseIterable {
    case spoofedFrom, noTo, noFrom, noStreamID, corr6, comment

    var rule: String {
        switch self {
        case .spoofedFrom: return "STANZA-ADDR-4"
        case .noTo: return "STANZA-ADDR-1"
        case .noFrom: return "STANZA-ADDR-2"
        case .noStreamID: return "STREAM-HDR-8"
        case .corr6: return "DB-CORR-6"
        case .comment: return "XML-1"
        }
    }

    /// Injections after which the receiving server ends connection A (stream error + close).
    var kills: Bool {
        switch self {
        case .spoofedFrom, .noTo, .noFrom, .comment: return true
        case .noStreamID, .corr6: return false
        }
    }
}

struct IQReply {
    var due: Double
    var kind: UInt8        // 0 ping/empty, 1 disco#info, 2 vCard
    var id: [UInt8]
    var from: [UInt8]      // the reply's from (the request's to)
    var to: [UInt8]        // the reply's to (the request's from)
}

final class Link {
    let a: Domain, b: Domain
    let v6: Bool
    let rtt: Double
    var open = 0
    init(a: Domain, b: Domain, v6: Bool, rtt: Double) {
        self.a = a
        self.b = b
        self.v6 = v6
        self.rtt = rtt
    }
}

protocol Actor: AnyObject {
    /// Emits the frame due now; returns the time of the next one, or nil when done.
    func step(_ g: Generator, now: Double) -> Double?
}

final class Session: Actor {
    enum Phase { case start, stanzas, done }

    let link: Link
    let s: Domain, t: Domain
    let sHost: Host, tHost: Host
    let injection: Injection?
    let invalidKey: Bool
    weak var partner: Session?
    var rng: Rng
    let planned: Int
    let injectAt: Int

    var phase = Phase.start
    var wantsClose = false
    var sent = 0
    var replies: [IQReply] = []
    private var replyHead = 0
    private var a: Conn!
    private var queue: [PFrame] = []
    private var head = 0
    private var pbuf: [UInt8] = []

    init(link: Link, from s: Domain, to t: Domain, injection: Injection?, invalidKey: Bool, rng: Rng, meanStanzas: Double) {
        self.link = link
        self.s = s
        self.t = t
        sHost = link.v6 ? s.v6! : s.v4
        tHost = link.v6 ? t.v6! : t.v4
        self.injection = injection
        self.invalidKey = invalidKey
        self.rng = rng
        let n = 10 + Int(self.rng.exp(meanStanzas))
        planned = min(n, 20_000)
        injectAt = self.rng.range(3, max(3, planned - 2))
        queue.reserveCapacity(64)
        pbuf.reserveCapacity(16 << 10)
    }

    /// A partner may send IQ get/set here only if this session will stay up to answer them.
    var acceptsRequests: Bool { phase == .stanzas && !wantsClose && !(injection?.kills ?? false) }

    func step(_ g: Generator, now: Double) -> Double? {
        if head < queue.count {
            let f = queue[head]
            head += 1
            emit(g, f)
            if head < queue.count { return queue[head].time }
        }
        queue.removeAll(keepingCapacity: true)
        head = 0
        pbuf.removeAll(keepingCapacity: true)
        if phase == .done { return nil }
        plan(g, now: now)
        if queue.isEmpty { phase = .done; return nil }
        return queue[0].time
    }

    private func emit(_ g: Generator, _ f: PFrame) {
        let c = f.conn
        pbuf.withUnsafeBytes { raw in
            let p = UnsafeRawBufferPointer(rebasing: raw[f.start..<(f.start + f.length)])
            if f.fromClient {
                g.out.tcp(time: f.time, src: c.client, dst: c.server, sport: c.cport, dport: c.sport, seq: f.seq, ack: f.ack,
                          flags: f.flags, ipID: c.cIPID, payload: p)
                c.cIPID &+= 1
            } else {
                g.out.tcp(time: f.time, src: c.server, dst: c.client, sport: c.sport, dport: c.cport, seq: f.seq, ack: f.ack,
                          flags: f.flags, ipID: c.sIPID, payload: p)
                c.sIPID &+= 1
            }
        }
    }

    // MARK: queueing frames

    private var rttHalf: Double { link.rtt / 2 }
    private func proc() -> Double { 0.00005 + rng.exp(0.0015) }

    private func control(_ c: Conn, client: Bool, flags: UInt8, at t: Double) {
        queue.append(PFrame(time: t, conn: c, fromClient: client, flags: flags,
                            seq: client ? c.cseq : c.sseq, ack: flags & 0x10 != 0 ? (client ? c.sseq : c.cseq) : 0,
                            start: 0, length: 0))
    }

    /// SYN, SYN-ACK, ACK; returns the time of the last.
    private func open(_ c: Conn, at t: Double) -> Double {
        control(c, client: true, flags: 0x02, at: t)
        c.cseq &+= 1
        control(c, client: false, flags: 0x12, at: t + rttHalf)
        c.sseq &+= 1
        control(c, client: true, flags: 0x10, at: t + 2 * rttHalf)
        return t + 2 * rttHalf
    }

    /// FIN from the initiator, FIN from the acceptor, last ACK.
    private func fin(_ c: Conn, at t: Double) -> Double {
        control(c, client: true, flags: 0x11, at: t)
        c.cseq &+= 1
        control(c, client: false, flags: 0x11, at: t + rttHalf)
        c.sseq &+= 1
        control(c, client: true, flags: 0x10, at: t + 2 * rttHalf)
        return t + 2 * rttHalf
    }

    /// Segments pbuf[start...] at the MSS (some reordered or retransmitted) and adds the peer's ACK.
    /// Returns the time of that ACK.
    private func write(_ g: Generator, _ c: Conn, client: Bool, from start: Int, at t0: Double) -> Double {
        let total = pbuf.count - start
        if total == 0 { return t0 }
        let mss = 1448
        var t = t0
        var off = 0
        let first = queue.count
        while off < total {
            let len = min(mss, total - off)
            let seq = (client ? c.cseq : c.sseq) &+ UInt32(off)
            let last = off + len == total
            queue.append(PFrame(time: t, conn: c, fromClient: client, flags: last ? 0x18 : 0x10, seq: seq,
                                ack: client ? c.sseq : c.cseq, start: start + off, length: len))
            off += len
            t += 0.000012 + Double(rng.below(20)) * 0.000001
        }
        if client { c.cseq &+= UInt32(total) } else { c.sseq &+= UInt32(total) }
        // Reordering: swap two neighbouring segments of this burst (their capture times stay in order).
        var i = first
        while i + 1 < queue.count {
            if rng.chance(g.reorderRate) {
                let ti = queue[i].time, tj = queue[i + 1].time
                queue.swapAt(i, i + 1)
                queue[i].time = ti
                queue[i + 1].time = tj
                g.truth.reordered += 1
                i += 2
            } else {
                i += 1
            }
        }
        // Retransmission: an identical copy right after the original or after the next segment.
        var k = first
        while k < queue.count {
            if queue[k].length > 0 && rng.chance(g.retransmitRate) {
                var dup = queue[k]
                let at = min(k + 1 + rng.below(2), queue.count)
                dup.time = at < queue.count ? queue[at].time : t
                if at == queue.count { t += 0.0002 }
                queue.insert(dup, at: at)
                // Keep times ascending after the insert.
                if at + 1 < queue.count {
                    for m in (at + 1)..<queue.count where queue[m].time < dup.time { queue[m].time = dup.time }
                }
                g.truth.retransmitted += 1
                k = at + 1
            } else {
                k += 1
            }
        }
        let ackTime = max(t, queue[queue.count - 1].time) + rttHalf
        control(c, client: !client, flags: 0x10, at: ackTime)
        return ackTime
    }

    /// Appends `body` to pbuf and queues it as one write.
    private func send(_ g: Generator, _ c: Conn, client: Bool, at t: Double, _ body: (inout [UInt8]) -> Void) -> Double {
        let start = pbuf.count
        body(&pbuf)
        return write(g, c, client: client, from: start, at: t)
    }

    // MARK: the script

    private func plan(_ g: Generator, now: Double) {
        switch phase {
        case .start: planDialback(g, now: now)
        case .stanzas: planStanzas(g, now: now)
        case .done: break
        }
    }

    private func planDialback(_ g: Generator, now: Double) {
        let a = Conn(client: sHost, server: tHost, cport: s.takePort(), sport: 5269, rng: &rng)
        self.a = a
        g.truth.connections += 1
        var tm = open(a, at: now)
        tm = send(g, a, client: true, at: tm + proc()) { XMPP.initialHeader(&$0, from: self.s, to: self.t) }
        let streamID: [UInt8]? = injection == .noStreamID ? nil : XMPP.streamID(self.t, rng: &rng)
        tm = send(g, a, client: false, at: tm + proc()) { XMPP.responseHeader(&$0, from: self.t, to: self.s, id: streamID) }
        tm = send(g, a, client: false, at: tm + proc()) { XMPP.features(&$0) }
        guard let streamID else {
            // STREAM-HDR-8: no stream id, so no dialback is possible; the originating server gives up.
            g.truth.inject(.noStreamID)
            tm = send(g, a, client: true, at: tm + proc()) { $0.put("</stream:stream>") }
            tm = send(g, a, client: false, at: tm + proc()) { $0.put("</stream:stream>") }
            _ = fin(a, at: tm + proc())
            phase = .done
            return
        }
        let key = XMPP.key(rng: &rng)
        tm = send(g, a, client: true, at: tm + proc()) {
            $0.put("<db:result from='"); $0.put(self.s.name); $0.put("' to='"); $0.put(self.t.name); $0.put("'>")
            $0.put(key); $0.put("</db:result>")
        }
        // Connection B: the receiving server (T) asks S's authoritative server.
        let b = Conn(client: tHost, server: sHost, cport: t.takePort(), sport: 5269, rng: &rng)
        g.truth.connections += 1
        var tb = open(b, at: tm + proc())
        tb = send(g, b, client: true, at: tb + proc()) { XMPP.initialHeader(&$0, from: self.t, to: self.s) }
        let bID = XMPP.streamID(s, rng: &rng)
        tb = send(g, b, client: false, at: tb + proc()) { XMPP.responseHeader(&$0, from: self.s, to: self.t, id: bID) }
        tb = send(g, b, client: false, at: tb + proc()) { XMPP.features(&$0) }
        tb = send(g, b, client: true, at: tb + proc()) {
            $0.put("<db:verify from='"); $0.put(self.t.name); $0.put("' to='"); $0.put(self.s.name); $0.put("' id='")
            $0.put(streamID); $0.put("'>"); $0.put(key); $0.put("</db:verify>")
        }
        let asValid = !(invalidKey || injection == .corr6)
        tb = send(g, b, client: false, at: tb + proc()) {
            $0.put("<db:verify from='"); $0.put(self.s.name); $0.put("' to='"); $0.put(self.t.name); $0.put("' id='")
            $0.put(streamID); $0.put(asValid ? "' type='valid'/>" : "' type='invalid'/>")
        }
        // The verdict on A (DB-CORR-6: valid although the authoritative server said invalid).
        let rsValid = asValid || injection == .corr6
        if injection == .corr6 { g.truth.inject(.corr6) }
        if rsValid { g.truth.dialbackValid += 1 } else { g.truth.dialbackInvalid += 1 }
        // The verdict and B's teardown are queued in time order (B's close starts after the verdict).
        let tv = tb + proc()
        tm = send(g, a, client: false, at: tv) {
            $0.put("<db:result from='"); $0.put(self.t.name); $0.put("' to='"); $0.put(self.s.name)
            $0.put(rsValid ? "' type='valid'/>" : "' type='invalid'/>")
        }
        tb = send(g, b, client: true, at: tm + proc()) { $0.put("</stream:stream>") }
        tb = send(g, b, client: false, at: tb + proc()) { $0.put("</stream:stream>") }
        tm = fin(b, at: tb + proc())
        if !rsValid {
            // RS closes after invalid (DB-RCV-5); the originating server sends nothing more.
            tm = send(g, a, client: false, at: tm + proc()) { $0.put("</stream:stream>") }
            tm = send(g, a, client: true, at: tm + proc()) { $0.put("</stream:stream>") }
            _ = fin(a, at: tm + proc())
            phase = .done
            return
        }
        phase = .stanzas
    }

    private func planStanzas(_ g: Generator, now: Double) {
        if g.winding || sent >= planned { wantsClose = true }
        let a = self.a!
        // Answers to the partner's IQ requests come first when due.
        let gap = min(rng.exp(g.meanGap), 5)
        if replyHead < replies.count && (replies[replyHead].due <= now + gap || wantsClose) {
            let tm = max(now, replies[replyHead].due)
            let start = pbuf.count
            while replyHead < replies.count && replies[replyHead].due <= tm {
                appendReply(g, replies[replyHead])
                replyHead += 1
            }
            if replyHead == replies.count { replies.removeAll(keepingCapacity: true); replyHead = 0 }
            _ = write(g, a, client: true, from: start, at: tm)
            return
        }
        if wantsClose {
            var tm = send(g, a, client: true, at: now + proc()) { $0.put("</stream:stream>") }
            tm = send(g, a, client: false, at: tm + proc()) { $0.put("</stream:stream>") }
            _ = fin(a, at: tm + proc())
            phase = .done
            return
        }
        let tm = now + gap
        if let inj = injection, inj.kills, sent >= injectAt {
            planInjection(g, inj, at: tm)
            return
        }
        let n = rng.below(4) == 0 ? rng.range(2, 6) : 1
        let start = pbuf.count
        for _ in 0..<n { appendStanza(g, at: tm) }
        sent += n
        g.truth.stanzas += n
        _ = write(g, a, client: true, from: start, at: tm)
    }

    private func planInjection(_ g: Generator, _ inj: Injection, at t0: Double) {
        let a = self.a!
        g.truth.inject(inj)
        var tm = send(g, a, client: true, at: t0) { o in
            switch inj {
            case .spoofedFrom:
                // A domain that exists, but was never validated on this stream.
                var other = g.domains[self.rng.below(g.domains.count)]
                if other === self.s { other = g.domains[(self.s.index + 1) % g.domains.count] }
                o.put("<message type='chat' id='"); XMPP.id(&o, rng: &self.rng); o.put("' from='")
                XMPP.jid(&o, other, user: self.rng.below(12), resource: self.rng.below(6)); o.put("' to='")
                XMPP.jid(&o, self.t, user: self.rng.below(12), resource: nil); o.put("'><body>")
                g.corpus.appendText(&o, length: 40, rng: &self.rng); o.put("</body></message>")
            case .noTo:
                o.put("<message type='chat' id='"); XMPP.id(&o, rng: &self.rng); o.put("' from='")
                XMPP.jid(&o, self.s, user: self.rng.below(12), resource: self.rng.below(6)); o.put("'><body>")
                g.corpus.appendText(&o, length: 60, rng: &self.rng); o.put("</body></message>")
            case .noFrom:
                o.put("<presence to='"); XMPP.jid(&o, self.t, user: self.rng.below(12), resource: nil)
                o.put("'><show>away</show><status>"); g.corpus.appendText(&o, length: 30, rng: &self.rng)
                o.put("</status></presence>")
            case .comment:
                o.put("<!-- outbound queue flushed; "); o.putInt(self.sent); o.put(" stanzas -->")
            case .noStreamID, .corr6:
                break
            }
        }
        let condition: StaticString
        switch inj {
        case .spoofedFrom: condition = "invalid-from"
        case .noTo, .noFrom: condition = "improper-addressing"
        default: condition = "restricted-xml"
        }
        tm = send(g, a, client: false, at: tm + proc()) {
            $0.put("<stream:error><"); $0.put(condition)
            $0.put(" xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>")
        }
        tm = send(g, a, client: true, at: tm + proc()) { $0.put("</stream:stream>") }
        _ = fin(a, at: tm + proc())
        phase = .done
    }

    // MARK: stanzas

    private func appendStanza(_ g: Generator, at time: Double) {
        let r = rng.below(100)
        let fromUser = rng.below(12), res = rng.below(6), toUser = rng.below(12)
        if r < 25, let p = partner, p.acceptsRequests {
            appendRequest(g, partner: p, at: time, fromUser: fromUser, res: res, toUser: toUser)
            return
        }
        if r < 50 {
            appendPresence(g, fromUser: fromUser, res: res, toUser: toUser)
            return
        }
        appendMessage(g, fromUser: fromUser, res: res, toUser: toUser)
    }

    private func appendMessage(_ g: Generator, fromUser: Int, res: Int, toUser: Int) {
        let len = textLength(rng: &rng)
        pbuf.put(rng.below(10) == 0 ? "<message type='normal' id='" : "<message type='chat' id='")
        XMPP.id(&pbuf, rng: &rng)
        pbuf.put("' from='"); XMPP.jid(&pbuf, s, user: fromUser, resource: res)
        pbuf.put("' to='"); XMPP.jid(&pbuf, t, user: toUser, resource: rng.chance(0.3) ? rng.below(6) : nil)
        pbuf.put("'><body>")
        g.corpus.appendText(&pbuf, length: len, rng: &rng)
        pbuf.put("</body>")
        if rng.below(8) == 0 {
            pbuf.put("<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p style='font-weight:bold'>")
            g.corpus.appendText(&pbuf, length: min(len, 400), rng: &rng)
            pbuf.put("</p></body></html>")
        }
        pbuf.put("<active xmlns='http://jabber.org/protocol/chatstates'/>")
        if rng.chance(0.5) { pbuf.put("<request xmlns='urn:xmpp:receipts'/>") }
        if rng.chance(0.4) { pbuf.put("<origin-id xmlns='urn:xmpp:sid:0' id='"); XMPP.id(&pbuf, rng: &rng); pbuf.put("'/>") }
        pbuf.put("</message>")
    }

    private func appendPresence(_ g: Generator, fromUser: Int, res: Int, toUser: Int) {
        let k = rng.below(10)
        pbuf.put("<presence from='"); XMPP.jid(&pbuf, s, user: fromUser, resource: k < 8 ? res : nil)
        pbuf.put("' to='"); XMPP.jid(&pbuf, t, user: toUser, resource: nil)
        if k == 8 { pbuf.put("' type='unavailable'/>"); return }
        if k == 9 { pbuf.put("' type='subscribe'/>"); return }
        pbuf.put("'>")
        if rng.chance(0.5) { pbuf.put(rng.chance(0.5) ? "<show>away</show>" : "<show>dnd</show>") }
        if rng.chance(0.6) {
            pbuf.put("<status>"); g.corpus.appendText(&pbuf, length: rng.range(5, 120), rng: &rng); pbuf.put("</status>")
        }
        pbuf.put("<priority>"); pbuf.putInt(rng.below(50)); pbuf.put("</priority>")
        pbuf.put("<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://gajim.org' ver='")
        g.corpus.appendBase64(&pbuf, length: 28, rng: &rng); pbuf.put("'/>")
        if rng.chance(0.3) {
            pbuf.put("<x xmlns='vcard-temp:x:update'><photo>"); pbuf.putHex(rng.next(), digits: 16)
            pbuf.putHex(rng.next(), digits: 16); pbuf.put("</photo></x>")
        }
        pbuf.put("</presence>")
    }

    /// An IQ get/set toward the partner's domain; the partner session answers it on its own connection.
    private func appendRequest(_ g: Generator, partner p: Session, at time: Double, fromUser: Int, res: Int, toUser: Int) {
        var reply = IQReply(due: time + link.rtt + proc(), kind: 0, id: [], from: [], to: [])
        XMPP.id(&reply.id, rng: &rng)
        XMPP.jid(&reply.to, s, user: fromUser, resource: res)
        let k = rng.below(10)
        let toFull = k >= 8
        if k < 4 {
            // Server-to-server ping (bare domains).
            reply.to = s.name
            reply.from = t.name
        } else {
            XMPP.jid(&reply.from, t, user: toUser, resource: toFull ? rng.below(6) : nil)
        }
        pbuf.put("<iq type='"); pbuf.put(k == 9 ? "set" : "get"); pbuf.put("' id='"); pbuf.put(reply.id)
        pbuf.put("' from='"); pbuf.put(reply.to); pbuf.put("' to='"); pbuf.put(reply.from); pbuf.put("'>")
        switch k {
        case 0..<4: pbuf.put("<ping xmlns='urn:xmpp:ping'/>")
        case 4..<6: pbuf.put("<query xmlns='http://jabber.org/protocol/disco#info'/>"); reply.kind = 1
        case 6..<9: pbuf.put("<vCard xmlns='vcard-temp'/>"); reply.kind = 2
        default:
            pbuf.put("<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:microblog:0'><item id='")
            XMPP.id(&pbuf, rng: &rng)
            pbuf.put("'><entry xmlns='http://www.w3.org/2005/Atom'><title>")
            g.corpus.appendText(&pbuf, length: rng.range(10, 80), rng: &rng)
            pbuf.put("</title><content type='text'>")
            g.corpus.appendText(&pbuf, length: textLength(rng: &rng), rng: &rng)
            pbuf.put("</content></entry></item></publish></pubsub>")
        }
        pbuf.put("</iq>")
        p.replies.append(reply)
        g.truth.iqRequests += 1
    }

    private func appendReply(_ g: Generator, _ r: IQReply) {
        pbuf.put("<iq type='result' id='"); pbuf.put(r.id); pbuf.put("' from='"); pbuf.put(r.from)
        pbuf.put("' to='"); pbuf.put(r.to)
        switch r.kind {
        case 1:
            pbuf.put("'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc' name='")
            g.corpus.appendText(&pbuf, length: 12, rng: &rng)
            pbuf.put("'/>")
            let features: [StaticString] = ["http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
                                            "http://jabber.org/protocol/chatstates", "urn:xmpp:receipts", "urn:xmpp:ping",
                                            "urn:xmpp:time", "jabber:iq:version", "urn:xmpp:jingle:1", "urn:xmpp:mam:2",
                                            "urn:xmpp:carbons:2", "http://jabber.org/protocol/xhtml-im", "urn:xmpp:avatar:metadata+notify"]
            for f in features where rng.below(4) != 0 { pbuf.put("<feature var='"); pbuf.put(f); pbuf.put("'/>") }
            pbuf.put("</query></iq>")
        case 2:
            pbuf.put("'><vCard xmlns='vcard-temp'><FN>"); g.corpus.appendText(&pbuf, length: 20, rng: &rng)
            pbuf.put("</FN><NICKNAME>"); pbuf.put(r.to.prefix { $0 != UInt8(ascii: "@") }.map { $0 })
            pbuf.put("</NICKNAME><DESC>"); g.corpus.appendText(&pbuf, length: rng.range(20, 300), rng: &rng)
            pbuf.put("</DESC>")
            if rng.chance(0.6) {
                pbuf.put("<PHOTO><TYPE>image/png</TYPE><BINVAL>")
                g.corpus.appendBase64(&pbuf, length: rng.range(1000, 6400), rng: &rng)
                pbuf.put("</BINVAL></PHOTO>")
            }
            pbuf.put("</vCard></iq>")
        default:
            pbuf.put("'/>")
        }
        g.truth.stanzas += 1
    }
}
