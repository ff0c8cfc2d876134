import Testing
@testable import S2Facts
import S2Model
import S2XMPP

/// Elements go into a fact as XML text and come back through the stream decoder as the same tree.
@Suite struct FactXMLTests {
    /// Parses `xml` as the sensor's decoder would inside a stream with `header`, then checks the
    /// fact round trip gives the same tree.
    func roundTrip(_ header: String, _ xml: String) throws -> XMLElement {
        final class Sink: XMPPEventSink {
            var elements: [XMLElement] = []
            func xmppEvent(_ e: XMPPEvent) { if case .element(let el) = e.kind { elements.append(el) } }
            func xmppAnomaly(_ a: Anomaly) {}
        }
        let sink = Sink()
        let d = XMPPStreamDecoder(direction: .clientToServer, sink: sink)
        var bytes = Array((header + xml).utf8)
        bytes.withUnsafeMutableBytes { d.feed(UnsafeRawBufferPointer($0), at: 0, frame: FrameRef(input: 0, number: 1, time: .zero)) }
        let original = try #require(sink.elements.first)
        let s = FactXML.serialize(original)
        let back = try #require(FactXML.parseElement(s))
        #expect(same(original, back), "\(s.xml) with \(s.context)")
        return back
    }

    func same(_ a: XMLElement, _ b: XMLElement) -> Bool {
        a.local == b.local && a.namespace == b.namespace && a.prefix == b.prefix && a.attributes == b.attributes
            && a.declarations == b.declarations && a.text == b.text && a.truncated == b.truncated
            && a.children.count == b.children.count && zip(a.children, b.children).allSatisfy { same($0, $1) }
    }

    let header = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='b.lab' from='a.lab' id='s1' version='1.0'>"

    @Test func dialbackElementsKeepTheirInheritedPrefix() throws {
        let el = try roundTrip(header, "<db:result from='a.lab' to='b.lab'>a1b2&amp;c3</db:result>")
        #expect(el.namespace == Namespace.dialback && el.prefix == "db" && el.text == "a1b2&c3")
    }

    @Test func stanzasKeepChildNamesAndTheirNamespaces() throws {
        let el = try roundTrip(header, "<iq type='get' id='p1' from='a.lab' to='b.lab'><ping xmlns='urn:xmpp:ping'/></iq>")
        #expect(el.children.first?.namespace == "urn:xmpp:ping")
    }

    @Test func attributeWhitespaceAndMarkupSurvive() throws {
        let el = try roundTrip(header, "<stream:error><text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>a&#13;b\tc &lt;x&gt; 'q'</text><x:y xmlns:x='urn:x' x:a='1&#9;2&#10;3&apos;'/></stream:error>")
        #expect(el.children.count == 2)
        #expect(el.children[1].attributes.first?.value == "1\t2\n3'")
    }

    @Test func undeclaredDefaultNamespaceAndRedeclaredPrefixes() throws {
        _ = try roundTrip(header, "<features xmlns='http://etherx.jabber.org/streams'><a xmlns=''><b xmlns:db='urn:other'><db:c/></b></a><db:d/></features>")
    }

    @Test func truncatedMarksComeBack() throws {
        let el = XMLElement(local: "x", namespace: "urn:a", children: [XMLElement(local: "y", namespace: "urn:a", truncated: true)], truncated: true)
        let s = FactXML.serialize(el)
        let back = try #require(FactXML.parseElement(s))
        #expect(back.truncated && back.children[0].truncated)
    }

    @Test func headersComeBackWithDeclarationsAndAttributes() throws {
        var h = StreamHeader(local: "stream", namespace: Namespace.streams, prefix: "stream",
                             attributes: [XMLAttribute(local: "to", value: "b.lab"), XMLAttribute(local: "lang", namespace: Namespace.xml, prefix: "xml", value: "en")],
                             declarations: [NamespaceDeclaration(prefix: nil, uri: "jabber:server"), NamespaceDeclaration(prefix: "stream", uri: Namespace.streams)])
        h.hadXMLDeclaration = true
        let back = try #require(FactXML.parseHeader(FactXML.serialize(h), hadXMLDeclaration: true, declaredEncoding: nil))
        #expect(back == h)
    }

    @Test func notOneElementIsRefused() {
        #expect(FactXML.parseElement(SerializedElement(xml: "<a/><b/>", context: [], truncated: [])) == nil)
        #expect(FactXML.parseElement(SerializedElement(xml: "<a>", context: [], truncated: [])) == nil)
        #expect(FactXML.parseElement(SerializedElement(xml: "<p:a/>", context: [], truncated: [])) == nil)
    }
}
