import S2Dialback
import S2Engine
import S2Model
import S2Synth
import S2XMPP
import Testing

/// The memory budget (`--max-memory`) charges an open connection for what its dialback model keeps
/// of what the peers sent (headers, features, stream errors, stanza domains, the domain caches), on
/// top of the flat per-connection figure: a peer that sends long names costs its real share. The
/// charge is a running total, released with the connection, and capped per byte of XML so that
/// rounds not yet applied can be bounded from their byte count (`--threads`).
struct RetainedBytesTests {
    /// A DNS name's longest form, 250 bytes, distinct per tag.
    static func long(_ tag: String) -> String {
        String((tag + "-" + String(repeating: "x", count: 62) + "." + String(repeating: "y", count: 62) + "."
                + String(repeating: "z", count: 62) + "." + String(repeating: "w", count: 62)).prefix(250))
    }

    /// One connection: headers naming `origin`/`target` (and stream id `id`), then stanzas whose
    /// addresses name `stanzaDomain`, the last of each direction with a body of `pad` bytes (a
    /// stanza's text is not kept); closed when `close`.
    static func transcript(origin: String, target: String, id: String, stanzaDomain: String, close: Bool,
                           pad: PerDirection<Int> = PerDirection(0, 0)) -> String {
        func body(_ n: Int) -> String { n > 0 ? "<body>" + String(repeating: "p", count: n) + "</body>" : "" }
        var t = ["C> $HDR to='\(target)' from='\(origin)'>", "S> $HDR from='\(target)' to='\(origin)' id='\(id)'>",
                 "C> <message from='u@\(stanzaDomain)' to='v@\(target)'/>",
                 "C> <message from='w@\(stanzaDomain)' to='v@\(target)'>\(body(pad.clientToServer))</message>",
                 "S> <message from='v@\(target)' to='u@\(stanzaDomain)'>\(body(pad.serverToClient))</message>"]
        if close { t += ["C> </stream:stream>", "S> </stream:stream>", "close"] }
        return t.joined(separator: "\n")
    }

    /// Bytes each direction sends in a transcript of `transcript`'s form.
    static func sent(_ t: String) -> PerDirection<Int> {
        var n = PerDirection(0, 0)
        for line in t.split(separator: "\n") {
            if line.hasPrefix("C> ") { n.clientToServer += line.utf8.count - 3 }
            if line.hasPrefix("S> ") { n.serverToClient += line.utf8.count - 3 }
        }
        return n
    }

    static func wireBytes(_ transcript: String) throws -> Int {
        try Transcript(transcript).frames.reduce(0) { $0 + $1.bytes.count }
    }

    @Test func whatAConnectionKeepsIsChargedByItsSizeAndReleasedWithIt() throws {
        let fat = Self.transcript(origin: Self.long("o"), target: Self.long("t"), id: Self.long("i"), stanzaDomain: Self.long("s"), close: false)
        // The lean connection's bodies make it send as many bytes each way (the same rings, parsers
        // and TCP state): only what the model keeps differs.
        let (fatSent, plain) = (Self.sent(fat), Self.sent(Self.transcript(origin: "o.example", target: "t.example", id: "i1",
                                                                              stanzaDomain: "s.example", close: false)))
        let pad = PerDirection(fatSent.clientToServer - plain.clientToServer - 13, fatSent.serverToClient - plain.serverToClient - 13)
        let lean = Self.transcript(origin: "o.example", target: "t.example", id: "i1", stanzaDomain: "s.example", close: false, pad: pad)
        #expect(Self.sent(lean) == fatSent)
        let fatEngine = try ExchangeArchiveTests.running(fat), leanEngine = try ExchangeArchiveTests.running(lean)
        let fatCharge = fatEngine.connectionRules.model.openRetainedBytes
        let leanCharge = leanEngine.connectionRules.model.openRetainedBytes
        // The two headers carry five 250-byte values, the stanzas' cache two more domain parts (and
        // the stanza domain list one): at least 2,000 bytes more than short names, none of it free.
        #expect(leanCharge > 0)
        #expect(fatCharge - leanCharge >= 2_000, "fat \(fatCharge), lean \(leanCharge)")
        #expect(fatCharge <= DialbackModel.maxRetainedBytesPerWireByte * (try Self.wireBytes(fat)))
        // The budget's estimate is that difference.
        #expect(fatEngine.estimatedStateBytes - leanEngine.estimatedStateBytes == fatCharge - leanCharge)

        let closed = try ExchangeArchiveTests.running(Self.transcript(origin: Self.long("o"), target: Self.long("t"), id: Self.long("i"),
                                                                      stanzaDomain: Self.long("s"), close: true))
        #expect(closed.connectionRules.model.openRetainedBytes == 0)
        #expect(closed.connectionRules.model.openDomainCacheBytes == 0)
        #expect(closed.correlator.model.openRetainedBytes == 0)
        // Live runs forget connections instead of retiring them: released the same.
        let live = try ExchangeArchiveTests.running(Self.transcript(origin: Self.long("o"), target: Self.long("t"), id: Self.long("i"),
                                                                    stanzaDomain: Self.long("s"), close: true), retainHistory: false)
        #expect(live.connectionRules.model.openRetainedBytes == 0)
    }

    /// Each child of a features element is its own node with its own copy of a 1,000-byte
    /// namespace: about 1,100 bytes kept per 8 bytes of XML. The charge stops at the per-byte cap.
    @Test func aKeptElementIsChargedAtMostTheCapPerByteOfItsXML() throws {
        let ns = "urn:" + String(repeating: "n", count: 996)
        let children = String(repeating: "<p:a/>", count: 200)
        let t = ["C> $HDR to='t.example' from='o.example'>", "S> $HDR from='t.example' to='o.example' id='i1'>",
                 "S> <stream:features xmlns:p='\(ns)'>\(children)</stream:features>"].joined(separator: "\n")
        let engine = try ExchangeArchiveTests.running(t)
        let model = engine.connectionRules.model
        let features = try #require(model.connection(ConnectionID(1))?.features)
        #expect(features.children.count == 200)
        #expect(features.retainedBytes > 200_000)
        let charge = model.openRetainedBytes
        #expect(charge > 0)
        #expect(charge <= DialbackModel.maxRetainedBytesPerWireByte * (try Self.wireBytes(t)), "charged \(charge)")
    }

    @Test func theDomainCacheCountsItsEntries() {
        var cache = JIDDomainCache()
        let parts = (0..<6).map { "d\($0)." + String(repeating: "e", count: 40) }
        let entry = 48 + 2 * parts[0].utf8.count  // the part as sent and its normalised form
        _ = cache.domain(ofJID: "u@" + parts[0])
        #expect(cache.retainedBytes == entry)
        _ = cache.domain(ofJID: "other@" + parts[0] + "/r")
        #expect(cache.retainedBytes == entry, "a hit keeps nothing more")
        for p in parts.dropFirst() { _ = cache.domain(ofJID: p) }
        #expect(cache.retainedBytes == JIDDomainCache.capacity * entry, "replaced entries leave the count")
        _ = cache.domain(ofJID: String(repeating: "l", count: JIDDomainCache.maxPartBytes + 1))
        #expect(cache.retainedBytes == JIDDomainCache.capacity * entry, "a part too long is not kept")
    }
}
