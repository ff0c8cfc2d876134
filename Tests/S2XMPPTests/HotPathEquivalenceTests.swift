import S2Model
import S2TestSupport
@testable import S2XMPP
import Testing

/// The byte-level fast paths of the hot path (domain folding, JID normalisation, evidence
/// rendering) against the plain `String` definitions they replace: same answers, on ASCII, on
/// other scripts and on the edge cases (trailing dots, empty parts, escaping).
@Suite struct HotPathEquivalenceTests {
    /// The definition: Unicode lower-casing, one trailing dot dropped.
    static func referenceDomain(_ d: String) -> String {
        var s = d.lowercased()
        if s.hasSuffix("."), s.count > 1 { s.removeLast() }
        return s
    }

    static func referenceJID(_ j: String) -> String {
        guard let slash = j.utf8.firstIndex(of: 0x2f) else { return referenceDomain(j) }
        return referenceDomain(String(j[..<slash])) + j[slash...]
    }

    static let domains = ["example.com", "Example.COM", "example.com.", "EXAMPLE.COM.", ".", "a.", "", "ÉXAMPLE.fr",
                          "bücher.DE.", "xn--bcher-kva.example", "MiXeD-Case.Example", "ΣΊΣΥΦΟΣ.gr", "1.2.3.4", "[::1]"]

    @Test(arguments: domains)
    func domainFoldingMatchesLowercasing(_ d: String) {
        #expect(normalizedDomain(d) == Self.referenceDomain(d))
        // Again: domains beyond ASCII now come from the table of those folded before.
        #expect(normalizedDomain(d) == Self.referenceDomain(d))
    }

    @Test(arguments: ["user@Example.COM/Res/Part", "Heidi@xmpp.lab.example.de/Conversations.DX3xN0", "a.example",
                      "A.Example./x", "/only-resource", "nobody@/", "ÜSER@bücher.de/ÄÖ", "user@example.com/", ""])
    func jidNormalisationKeepsTheResourceAsSent(_ j: String) {
        #expect(normalizedJID(j) == Self.referenceJID(j))
    }

    /// More distinct domains beyond ASCII than the table of folded ones holds: it empties and
    /// fills again, and every answer stays the definition's.
    @Test func foldingPastTheTablesSizeStaysRight() {
        for i in 0..<3_000 {
            let d = (i % 2 == 0 ? "Ü" : "ü") + "\(i).Example."
            #expect(normalizedDomain(d) == "ü\(i).example")
        }
        #expect(normalizedDomain("Ü7.Example.") == "ü7.example")
    }

    /// An unprefixed attribute's value is the first whose name is the one asked and that has no
    /// namespace: random lists of names of equal and different lengths, some namespaced.
    @Test func attributeLookupMatchesItsDefinition() {
        var rng = SplitMix(state: 0x6174_7472)
        let names = ["to", "id", "from", "type", "lang", "ty", "tox", "fr", "version", "é", "xé"]
        for _ in 0..<5_000 {
            let attributes = (0..<Int.random(in: 0...6, using: &rng)).map { i in
                XMLAttribute(local: names.randomElement(using: &rng)!, namespace: Bool.random(using: &rng) ? "" : Namespace.xml,
                             value: "v\(i)")
            }
            let el = XMLElement(local: "message", namespace: Namespace.server, attributes: attributes)
            for name in names {
                let expected = attributes.first { $0.local == name && $0.namespace.isEmpty }?.value
                #expect(el[attribute: name] == expected, "\(name) in \(attributes)" as Comment)
            }
        }
    }

    /// The definition of a JID's domain: before the first '/', after the last '@'; none when empty,
    /// over 1023 bytes or holding a space or a tab.
    static func referenceJIDDomain(_ j: String) -> String? {
        let bare = j.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let domain = bare.lastIndex(of: "@").map { String(bare[bare.index(after: $0)...]) } ?? bare
        if domain.isEmpty || domain.utf8.count > 1023 || domain.contains(" ") || domain.contains("\t") { return nil }
        return referenceDomain(domain)
    }

    @Test(arguments: ["user@Example.COM/Res/Part", "a@b@C.example/r@s", "Example.COM.", "@", "@/", "u@/r", "/x", "",
                      "u@ex ample", "u@ex\tample", "ÜSER@Bücher.DE./Ä", "x@" + String(repeating: "a", count: 1023),
                      "x@" + String(repeating: "a", count: 1024), String(repeating: "É", count: 512)])
    func jidDomainMatchesItsDefinition(_ j: String) {
        #expect(jidDomain(j) == Self.referenceJIDDomain(j))
    }

    /// Random JIDs from the characters that matter (separators, case, dots, blanks, other scripts).
    @Test func jidDomainMatchesItsDefinitionOnRandomJIDs() {
        let alphabet: [String] = ["a", "B", "z", "@", "/", ".", " ", "\t", "é", "Σ", "-", "Z"]
        var rng = SplitMix(state: 0x6a69_6464)
        for _ in 0..<20_000 {
            let j = (0..<Int.random(in: 0...12, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }.joined()
            #expect(jidDomain(j) == Self.referenceJIDDomain(j), "jid \(j.debugDescription)" as Comment)
        }
    }

    /// One stream's cache answers what `jidDomain` answers, hit or miss: random JIDs over a few
    /// domain parts (so most lookups are hits, among parts of equal length that differ in a byte
    /// or in case), and more distinct parts than the cache holds (so entries are replaced).
    @Test func domainCacheAnswersAsJIDDomain() {
        var rng = SplitMix(state: 0x646f_6d73)
        let parts = ["ab.example", "ac.example", "AB.example", "ab.example.", "", "a b", "bücher.de", "x", "muc-24.example",
                     "im.lab-43.example.net", String(repeating: "l", count: 300), String(repeating: "l", count: 299) + "m"]
        let locals = ["", "u@", "Heidi@", "a@b@", "@"]
        let resources = ["", "/", "/r", "/Conversations.DX3xN0", "/a@b/c"]
        var cache = JIDDomainCache()
        for _ in 0..<20_000 {
            let j = locals.randomElement(using: &rng)! + parts.randomElement(using: &rng)! + resources.randomElement(using: &rng)!
            #expect(cache.domain(ofJID: j) == Self.referenceJIDDomain(j), "jid \(j.debugDescription)" as Comment)
        }
    }

    @Test func elementDomainsThroughTheCacheAreTheElementsOwn() throws {
        var cache = JIDDomainCache()
        for xml in ["<message from='U@A.Example/Home' to='v@B.EXAMPLE'/>", "<message from='x@a.example/r' to='b.example'/>",
                    "<iq to='' type='get' id='1'/>", "<presence from='a b@c'/>"] {
            let resolved = try #require(Self.element(xml)), plain = try #require(Self.element(xml))
            resolved.resolveDomains(&cache)
            #expect(resolved.fromDomain == plain.fromDomain && resolved.toDomain == plain.toDomain, "\(xml)" as Comment)
        }
    }

    /// Expat's `uri\u{1}local\u{1}prefix` split as the definition says, for the names answered
    /// with literals and their near misses (a prefix, one byte more or less, another namespace).
    @Test(arguments: ["to", "id", "from", "type", "tox", "t", "fro", "types", "jabber:server\u{1}message",
                      "jabber:server\u{1}presence", "jabber:server\u{1}iq", "jabber:server\u{1}body",
                      "jabber:server\u{1}message\u{1}s", "jabber:server\u{1}iq\u{1}x", "jabber:server\u{1}bodies",
                      "jabber:server\u{1}", "jabber:client\u{1}message", "jabber:serverx\u{1}iq", "urn:xmpp:ping\u{1}ping",
                      "http://www.w3.org/XML/1998/namespace\u{1}lang\u{1}xml", "version"])
    func namesSplitAsDefined(_ name: String) {
        let parts = name.split(separator: "\u{1}", omittingEmptySubsequences: false).map(String.init)
        let expected: (String, String, String?) = parts.count == 1 ? ("", parts[0], nil)
            : (parts[0], parts[1], parts.count > 2 ? parts[2] : nil)
        let got = name.withCString { splitName($0) }
        #expect(got.0 == expected.0 && got.1 == expected.1 && got.2 == expected.2, "\(name.debugDescription) → \(got)" as Comment)
    }

    static func element(_ xml: String) -> XMLElement? {
        let text = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'>" + xml
        for e in run(Array(text.utf8), cuts: []).raw { if case .element(let el) = e.kind { return el } }
        return nil
    }

    /// An IQ (the tree keeps its children's names only) and a stream error (text kept), both
    /// with characters to escape.
    static let evidence = [
        "<iq type='get' id='a&amp;b' from='heidi@xmpp.lab.example.de/Conv' to='peggy@muc.example'>"
            + "<query xmlns='jabber:iq:roster' ver='&apos;1&quot;'><item jid='ä@b.example' name='&lt;x&gt;'/><item jid='c@d'/></query>"
            + "<ping xmlns='urn:xmpp:ping'/></iq>",
        "<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            + "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>&lt;x&gt; &amp; ünïcödé 'quoted'</text></stream:error>",
    ]

    @Test(arguments: [0, 1, 7, 40, 80, 115, 199, 200, 201, 1000], [0, 1])
    func evidencePrefixIsThePrefixOfTheRendering(_ length: Int, _ which: Int) throws {
        let el = try #require(Self.element(Self.evidence[which]))
        let full = el.render(limit: 100_000)
        #expect(which == 0 ? full.contains("id='a&amp;b'") && full.hasSuffix("'peggy@muc.example'><query/><ping/></iq>")
                           : full.contains("&lt;x&gt; &amp; ünïcödé &apos;quoted&apos;</stream:error>") == false && full.contains("&lt;x&gt; &amp; ünïcödé &apos;quoted&apos;</text>"))
        #expect(el.renderPrefix(length) == String(full.prefix(length)))
        #expect(el.renderPrefix(length) == String(el.render().prefix(length)))
    }

    /// ASCII renderings are cut by bytes, except where a CR LF pair is one Character: texts of
    /// each kind, cut everywhere around where the pairs fall.
    @Test(arguments: ["<stream:error><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>"
                        + String(repeating: "ab&#13;\n", count: 60) + "</text></stream:error>",
                      "<stream:error><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>"
                        + String(repeating: "plain ascii ", count: 40) + "</text></stream:error>",
                      "<iq type='get' id='x' to='a.example'><query xmlns='jabber:iq:version'/><ping xmlns='urn:xmpp:ping'/></iq>"])
    func asciiEvidenceIsCutAtCharacters(_ xml: String) throws {
        let el = try #require(Self.element(xml))
        let full = el.render(limit: 100_000)
        for length in [0, 1, 2, 3, 50, 97, 98, 99, 100, 101, 199, 200, 201, 250, full.count - 1, full.count, full.count + 1] {
            #expect(el.renderPrefix(length) == String(full.prefix(length)), "prefix \(length)" as Comment)
            let cut = el.render(limit: length)
            #expect(cut == (full.count > length ? String(full.prefix(length)) + "…" : full), "limit \(length)" as Comment)
        }
    }

    @Test func renderingPastTheLimitEndsWithAnEllipsis() throws {
        let el = try #require(Self.element("<message to='b.example' from='a.example'><body>" + String(repeating: "ü", count: 300) + "</body></message>"))
        let r = el.render(limit: 50)
        #expect(r.count == 51 && r.hasSuffix("…"))
        #expect(String(r.dropLast()) == String(el.render(limit: 100_000).prefix(50)))
    }
}
