import Foundation
import S2Model
import S2XMPP
import Testing

/// Records events as comparable strings.
final class Recorder: XMPPEventSink {
    var events: [String] = []
    /// What each event says, without the frames that carried it.
    var contents: [String] = []
    var raw: [XMPPEvent] = []
    var anomalies: [Anomaly] = []
    func xmppEvent(_ e: XMPPEvent) {
        raw.append(e)
        let what: String
        switch e.kind {
        case .streamOpened(let h): what = "open \(h.prefix ?? "-"):\(h.local) {\(h.namespace)} \(h.attributes.map { "\($0.qualifiedName)=\($0.value)" }.joined(separator: ",")) \(h.declarations.map { "\($0.prefix ?? "")=\($0.uri)" }.joined(separator: ","))"
        case .element(let el): what = "element \(el.render(limit: 100_000)) trunc=\(el.truncated)"
        case .streamClosed: what = "close"
        case .restricted(let r): what = "restricted \(r)"
        case .notWellFormed(let code, _, let off): what = "nwf \(code)@\(off)"
        case .dataAfterClose: what = "after-close"
        case .tlsStarted(let t): what = "tls \(t)"
        case .pickedUp: what = "picked-up"
        case .bytesLost(let n): what = "lost \(n)"
        }
        let tentative = e.tentative ? " tentative" : ""
        contents.append("\(e.direction.rawValue) \(what)\(tentative) [\(e.startOffset),\(e.endOffset))")
        events.append("\(e.direction.rawValue) \(what) [\(e.startOffset),\(e.endOffset)) f\(e.firstFrame.number)-\(e.lastFrame.number)")
    }
    func xmppAnomaly(_ a: Anomaly) { anomalies.append(a) }
}

let s2sStream = Array("""
<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='b.example' from='a.example' version='1.0' xml:lang='en'>
<db:result from='a.example' to='b.example'>574904085be36e0b24eb9037400643f4f45cf4e3215d998cd4e0101a73e4d282</db:result> \
<message from='u@a.example' to='v@b.example' id='m1' type='chat'><body>h\u{e9}llo &amp; &lt;w\u{f6}rld&gt; \u{1F600}</body><thread>t1</thread></message>
 <presence from='u@a.example/r' to='v@b.example'/><iq from='a.example' to='b.example' id='p1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>
<message from='u@a.example' to='v@b.example'><body><![CDATA[x < y]]></body></message></stream:stream>
""".utf8)

/// Feeds `bytes` split at the given cut points; chunk k is carried by frame k+1.
func run(_ bytes: [UInt8], cuts: [Int], direction: Direction = .clientToServer) -> Recorder {
    let rec = Recorder()
    let d = XMPPStreamDecoder(direction: direction, sink: rec)
    var start = 0
    for (k, end) in (cuts + [bytes.count]).enumerated() where end > start {
        bytes[start..<end].withUnsafeBytes { b in
            d.feed(b, at: UInt64(start), frame: FrameRef(input: 0, number: k + 1, time: Timestamp(seconds: Int64(k), nanoseconds: 0)))
        }
        start = end
    }
    d.finish()
    return rec
}

/// The frame that carried byte `offset` given the cuts.
func frameOf(_ offset: UInt64, cuts: [Int]) -> Int { cuts.filter { UInt64($0) <= offset }.count + 1 }

struct ChunkingIndependenceTests {
    @Test func everySplitPointGivesIdenticalEventsAndFrames() {
        let whole = run(s2sStream, cuts: [])
        #expect(whole.events.count == 7, "\(whole.events)")
        let reference = whole.contents
        for cut in 1..<s2sStream.count {
            let r = run(s2sStream, cuts: [cut])
            #expect(r.contents == reference, "split at \(cut)")
            #expect(r.raw.map(\.startOffset) == whole.raw.map(\.startOffset), "offsets, split at \(cut)")
            for e in r.raw {
                #expect(e.firstFrame.number == frameOf(e.startOffset, cuts: [cut]), "first frame, split at \(cut)")
                #expect(e.lastFrame.number == frameOf(max(e.startOffset, e.endOffset - 1), cuts: [cut]), "last frame, split at \(cut)")
            }
        }
    }

    @Test func headerSplitIntoSmallChunksIsParsedAsSoonAsItIsComplete() {
        let s = Array("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'><presence/>".utf8)
        for n in [1, 2, 10] {
            let r = run(s, cuts: Array(stride(from: n, to: s.count, by: n)))
            #expect(r.raw.count == 2, "chunks of \(n): \(r.events)")
        }
    }

    @Test func oneByteChunksGiveIdenticalEventsAndFrames() {
        let whole = run(s2sStream, cuts: [])
        let cuts = Array(1..<s2sStream.count)
        let r = run(s2sStream, cuts: cuts)
        #expect(r.contents == whole.contents)
        for e in r.raw {
            #expect(e.firstFrame.number == Int(e.startOffset) + 1)
            #expect(e.lastFrame.number == Int(e.endOffset))
        }
    }

    @Test func headerCarriesEveryDeclarationAndAttribute() throws {
        let r = run(s2sStream, cuts: [])
        guard case .streamOpened(let h) = r.raw[0].kind else { Issue.record("no header"); return }
        #expect(h.isStreamRoot)
        #expect(h.to == "b.example" && h.from == "a.example" && h.version == "1.0" && h.lang == "en")
        #expect(h.defaultNamespace == "jabber:server")
        #expect(h.namespace(forPrefix: "db") == "jabber:server:dialback")
        #expect(h.prefix == "stream")
        #expect(h.hadXMLDeclaration)
        guard case .element(let db) = r.raw[1].kind else { Issue.record("no db:result"); return }
        #expect(db.is("result", Namespace.dialback) && db.prefix == "db")
        #expect(db.trimmedText == "574904085be36e0b24eb9037400643f4f45cf4e3215d998cd4e0101a73e4d282")
        guard case .element(let m) = r.raw[2].kind else { Issue.record("no message"); return }
        // Stanzas keep their addresses and children's names, never their content.
        #expect(m[attribute: "id"] == "m1" && m.child("body") != nil && m.child("thread") != nil)
        #expect(m.child("body")?.text == "" && !m.truncated)
        #expect(r.events.last?.contains("close") == true)
    }
}

struct RestrictedXMLTests {
    func events(_ s: String) -> Recorder { run(Array(s.utf8), cuts: []) }
    let head = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'>"

    @Test func commentIsReportedAndParsingContinues() {
        let r = events(head + "<!-- hi --><message to='a' from='b'/>")
        #expect(r.events.contains { $0.contains("restricted comment") })
        #expect(r.events.contains { $0.contains("element <message") })
    }

    @Test func processingInstructionIsReported() {
        let r = events(head + "<?php evil()?><presence/>")
        #expect(r.events.contains { $0.contains("restricted processingInstruction(target: \"php\")") })
        #expect(r.events.contains { $0.contains("element <presence") })
    }

    @Test func billionLaughsDoctypeStopsBeforeAnyExpansion() {
        var bomb = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
        var prev = "lol"
        for i in 1...12 {
            bomb += "<!ENTITY lol\(i) '" + String(repeating: "&\(prev);", count: 10) + "'>"
            prev = "lol\(i)"
        }
        bomb += "]><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'><message>&\(prev);</message>"
        let before = peakRSS()
        let r = events(bomb)
        #expect(r.events.contains { $0.contains("restricted doctype(name: \"lolz\")") })
        #expect(!r.events.contains { $0.contains("lollollol") })
        #expect(peakRSS() - before < 50_000, "the bomb must not expand")
    }

    @Test func undeclaredEntityIsARestrictedEntityReference() {
        let r = events(head + "<message><body>&foo;</body></message><presence/>")
        #expect(r.events.contains { $0.contains("restricted entityReference(name: \"foo\")") })
        #expect(r.events.contains { $0.contains("element <presence") }, "resynchronised after the bad entity: \(r.events)")
    }

    @Test func nonUTF8EncodingsAreReported() {
        let r = events("<?xml version='1.0' encoding='ISO-8859-1'?>" + head)
        #expect(r.events.contains { $0.contains("nonUTF8Encoding") })
        let bad = run(Array(head.utf8) + Array("<message><body>".utf8) + [0xff, 0xfe] + Array("</body></message>".utf8), cuts: [])
        #expect(bad.events.contains { $0.contains("restricted invalidUTF8") })
    }

    @Test func deepNestingIsCutWithBoundedMemory() {
        let depth = 100_000
        let s = head + String(repeating: "<a>", count: depth) + String(repeating: "</a>", count: depth) + "<presence/>"
        let r = events(s)
        #expect(r.anomalies.contains { $0.kind == .limitReached && $0.message.contains("nesting") })
        // The parse stopped at the cap and resumed at the next stanza; peak memory of the whole
        // binary on this input is measured out of process in HostileInputTests.
        #expect(r.events.contains { $0.contains("element <presence") })
    }

    @Test func stanzaLargerThanTheElementCapKeepsNoContent() {
        let big = String(repeating: "x", count: 3 << 20)
        let s = head + "<message to='v@b' from='u@a'><body>" + big + "</body></message><presence/>"
        let r = events(s)
        #expect(r.anomalies.contains { $0.kind == .limitReached && $0.message.contains("element cap") })
        let m = r.raw.compactMap { if case .element(let el) = $0.kind, el.local == "message" { return el } else { return nil } }.first
        #expect(m?.truncated == true)
        #expect((m?.child("body")?.text.utf8.count ?? 0) == 0)
        #expect(r.events.contains { $0.contains("element <presence") })
    }

    /// Segment-sized cuts of `bytes` (the way reassembly hands a stream over).
    func segments(_ bytes: [UInt8], _ size: Int = 1448) -> [Int] { Array(stride(from: size, to: bytes.count, by: size)) }

    @Test func longTextIsProgressNotOneHugeToken() {
        // 600 KB of body and 600 KB of whitespace between stanzas, arriving segment by segment:
        // more than `maxTokenBytes` (256 KB) pass without an event, yet no token is pending.
        let body = String(repeating: "x", count: 600 << 10)
        let gap = String(repeating: " ", count: 600 << 10)
        let s = Array((head + "<message to='v@b' from='u@a'><body>" + body + "</body></message>" + gap
                       + "<db:result from='a' to='b'>k3y</db:result><presence/>").utf8)
        let r = run(s, cuts: segments(s))
        #expect(!r.anomalies.contains { $0.message.contains("single XML token") }, "\(r.anomalies.map(\.message))")
        #expect(r.events.contains { $0.contains("element <message") })
        #expect(r.events.contains { $0.contains("element <presence") })
        // Text is still kept where the tree keeps it.
        let db = r.raw.compactMap { if case .element(let el) = $0.kind, el.local == "result" { return el } else { return nil } }.first
        #expect(db?.trimmedText == "k3y")
    }

    @Test func oneHugeTagIsCutAndParsingResumes() {
        let value = String(repeating: "v", count: 300 << 10)
        let s = Array((head + "<message to='" + value + "' from='u@a'/><presence/>").utf8)
        let r = run(s, cuts: segments(s))
        #expect(r.anomalies.contains { $0.kind == .limitReached && $0.message.contains("single XML token") })
        #expect(!r.events.contains { $0.contains("element <message") })
        #expect(r.events.contains { $0.contains("element <presence") })
    }

    @Test func whitespaceKeepalivesAreNotEvents() {
        let r = events(head + "   \n\n \t <presence/> \n")
        #expect(r.raw.count == 2)
    }
}

struct GapAndModeTests {
    @Test func afterAGapTheNextStanzaIsFoundWithTheHeaderNamespaces() {
        let rec = Recorder()
        let d = XMPPStreamDecoder(direction: .clientToServer, sink: rec)
        let head = Array("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'><message to='v@b' from='u@a'><body>lo".utf8)
        let tail = Array("st</body></message><db:result from='a' to='b'>k</db:result>".utf8)
        let f = { (n: Int) in FrameRef(input: 0, number: n, time: .zero) }
        head.withUnsafeBytes { d.feed($0, at: 0, frame: f(1)) }
        d.gap(at: UInt64(head.count), length: 100, frame: f(2))
        tail.withUnsafeBytes { d.feed($0, at: UInt64(head.count + 100), frame: f(3)) }
        d.finish()
        #expect(rec.anomalies.contains { $0.kind == .xmlDesync })
        let db = rec.raw.compactMap { if case .element(let el) = $0.kind { return el } else { return nil } }.first
        #expect(db?.is("result", Namespace.dialback) == true, "\(rec.events)")
        #expect(rec.raw.last?.firstFrame.number == 3)
        #expect(rec.raw.last.map { Int($0.startOffset) } == head.count + 100 + "st</body></message>".utf8.count)
    }

    @Test func proceedSwitchesBothDirectionsToTLS() {
        let rec = Recorder()
        let c = XMPPConnectionDecoder(connection: ConnectionID(1), sink: rec)
        let f = FrameRef(input: 0, number: 1, time: .zero)
        let ini = Array("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".utf8)
        let acc = Array("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' id='x'><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".utf8) + [0x16, 0x03, 0x03, 0x00, 0x10]
        ini.withUnsafeBytes { c.feed(.clientToServer, $0, at: 0, frame: f) }
        acc.withUnsafeBytes { c.feed(.serverToClient, $0, at: 0, frame: f) }
        [UInt8]([0x16, 0x03, 0x01, 0x02, 0x00]).withUnsafeBytes { c.feed(.clientToServer, $0, at: UInt64(ini.count), frame: f) }
        #expect(c.tls)
        #expect(rec.events.filter { $0.contains("tls true") }.count == 2)
        #expect(c.initiator.encryptedBytes == 5 && c.acceptor.encryptedBytes == 5)
    }

    @Test func saslSuccessRestartsBothStreams() {
        let rec = Recorder()
        let c = XMPPConnectionDecoder(connection: ConnectionID(1), sink: rec)
        let f = FrameRef(input: 0, number: 1, time: .zero)
        let h = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'"
        let ini1 = Array((h + "><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>").utf8)
        let acc = Array((h + " id='a'><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>" + "<?xml version='1.0'?>" + h + " id='b'>").utf8)
        let ini2 = Array(("<?xml version='1.0'?>" + h + ">").utf8)
        ini1.withUnsafeBytes { c.feed(.clientToServer, $0, at: 0, frame: f) }
        acc.withUnsafeBytes { c.feed(.serverToClient, $0, at: 0, frame: f) }
        ini2.withUnsafeBytes { c.feed(.clientToServer, $0, at: UInt64(ini1.count), frame: f) }
        #expect(rec.events.filter { $0.contains(" open ") }.count == 4, "\(rec.events)")
        #expect(!rec.events.contains { $0.contains("nwf") })
    }
}

func peakRSS() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }
    return 0
}
