#if canImport(Glibc)
import Glibc
#endif
@testable import S2XMPP
import S2Model
import Testing

/// The element builder alone, driven as expat drives it (names as `uri\u{1}local\u{1}prefix`,
/// attributes as a NULL-terminated name/value list): the tree it keeps and the limits it owns.
@Suite struct ElementBuilderTests {
    /// Calls `start` with C strings that live for the call.
    static func start(_ b: inout ElementBuilder, depth: Int, at: UInt64 = 0, end: UInt64 = 0, _ name: String,
                      _ attributes: [(String, String)] = []) -> ElementBuilder.Start {
        let strings = [name] + attributes.flatMap { [$0.0, $0.1] }
        var pointers: [UnsafePointer<CChar>?] = strings.map { strdup($0).map { UnsafePointer($0) } }
        defer { for p in pointers { free(UnsafeMutablePointer(mutating: p)) } }
        pointers.append(nil)
        return pointers.withUnsafeMutableBufferPointer { buf in
            let atts = UnsafeMutablePointer(buf.baseAddress!.advanced(by: 1))
            return b.start(depth: depth, at: at, end: end, name: buf[0]!, attributes: attributes.isEmpty ? nil : atts)
        }
    }

    static func text(_ b: inout ElementBuilder, depth: Int, _ t: String) {
        var t = t
        t.withUTF8 { u in u.withMemoryRebound(to: CChar.self) { b.text(depth: depth, $0.baseAddress!, Int32($0.count)) } }
    }

    static func end(_ b: inout ElementBuilder, depth: Int) -> XMLElement? { b.end(depth: depth) }

    static let server = "jabber:server\u{1}"
    static let dialback = "jabber:server:dialback\u{1}"

    @Test func aDialbackElementKeepsItsAttributesTextAndDeclarations() throws {
        var b = ElementBuilder(limits: XMLLimits())
        b.declare(prefix: "db", uri: "jabber:server:dialback")
        #expect(Self.start(&b, depth: 2, at: 100, end: 150, Self.dialback + "result\u{1}db", [("from", "a.example"), ("to", "b.example")]) == .kept)
        Self.text(&b, depth: 2, "key-")
        Self.text(&b, depth: 2, "123")
        let el = try #require(Self.end(&b, depth: 2))
        #expect(el.render() == "<db:result xmlns:db='jabber:server:dialback' from='a.example' to='b.example'>key-123</db:result>")
        #expect(b.elementStart == 100)
    }

    @Test func aStanzaKeepsItsChildrensNamesOnly() throws {
        var b = ElementBuilder(limits: XMLLimits())
        #expect(Self.start(&b, depth: 2, Self.server + "message", [("to", "v@b.example")]) == .keptStanza)
        Self.text(&b, depth: 2, "ignored")
        #expect(Self.start(&b, depth: 3, Self.server + "body", [("xml:lang", "en")]) == .kept)
        Self.text(&b, depth: 3, "hello")
        #expect(Self.start(&b, depth: 4, "urn:x\u{1}inner") == .skipped)
        #expect(b.end(depth: 4) == nil)
        #expect(b.end(depth: 3) == nil)
        let el = try #require(Self.end(&b, depth: 2))
        // Not "truncated": a stanza's content is left out by design, not cut by a limit.
        #expect(el.render() == "<message to='v@b.example'><body/></message>", "\(el.render())")
        #expect(!el.truncated)
        #expect(el.children.map(\.local) == ["body"] && el.children[0].attributes.isEmpty && el.text.isEmpty)
    }

    @Test func nodesPastTheCapAreCountedNotKept() throws {
        var limits = XMLLimits()
        limits.maxNodes = 3
        var b = ElementBuilder(limits: limits)
        #expect(Self.start(&b, depth: 2, "urn:x\u{1}list") == .kept)
        var kept = 0
        for _ in 0..<5 {
            if Self.start(&b, depth: 3, "urn:x\u{1}item") != .skipped { kept += 1 }
            _ = b.end(depth: 3)
        }
        let el = try #require(Self.end(&b, depth: 2))
        #expect(kept == 2 && el.children.count == 2 && el.truncated)
    }

    @Test func textPastTheCapMarksTheElementTruncated() throws {
        var limits = XMLLimits()
        limits.maxTextBytes = 8
        var b = ElementBuilder(limits: limits)
        _ = Self.start(&b, depth: 2, "urn:ietf:params:xml:ns:xmpp-streams\u{1}text")
        Self.text(&b, depth: 2, "12345")
        Self.text(&b, depth: 2, "6789")
        let el = try #require(Self.end(&b, depth: 2))
        #expect(el.text == "12345" && el.truncated)
    }

    @Test func elementsDeeperThanTheTreeOrPastTheByteCapAreSkipped() throws {
        var limits = XMLLimits()
        limits.maxTreeDepth = 1
        limits.maxElementBytes = 1000
        var b = ElementBuilder(limits: limits)
        _ = Self.start(&b, depth: 2, at: 0, end: 10, "urn:x\u{1}a")
        #expect(Self.start(&b, depth: 3, at: 10, end: 20, "urn:x\u{1}b") == .kept)
        #expect(Self.start(&b, depth: 4, at: 20, end: 30, "urn:x\u{1}c") == .skipped, "below the tree's depth")
        _ = b.end(depth: 4)
        _ = b.end(depth: 3)
        #expect(b.keepsNextStart(below: 2, end: 900))
        #expect(!b.keepsNextStart(below: 2, end: 1001), "past the element's byte cap")
        #expect(Self.start(&b, depth: 3, at: 1000, end: 1001, "urn:x\u{1}late") == .skipped)
        _ = b.end(depth: 3)
        let el = try #require(Self.end(&b, depth: 2))
        #expect(el.children.map(\.local) == ["b"] && el.truncated && el.children[0].truncated)
    }

    @Test func aNewTopLevelElementStartsAFreshTree() throws {
        var limits = XMLLimits()
        limits.maxNodes = 1
        var b = ElementBuilder(limits: limits)
        _ = Self.start(&b, depth: 2, at: 5, "urn:x\u{1}first")
        _ = Self.start(&b, depth: 3, "urn:x\u{1}dropped")
        _ = b.end(depth: 3)
        #expect(try #require(Self.end(&b, depth: 2)).truncated)
        #expect(Self.start(&b, depth: 2, at: 50, "urn:x\u{1}second") == .kept)
        let second = try #require(Self.end(&b, depth: 2))
        #expect(!second.truncated && second.local == "second" && b.elementStart == 50)
    }
}
