#if canImport(Glibc)
import Glibc
#endif
import S2Model

/// Namespace names S2Scope cares about.
public enum Namespace {
    public static let streams = "http://etherx.jabber.org/streams"
    public static let server = "jabber:server"
    public static let client = "jabber:client"
    public static let dialback = "jabber:server:dialback"
    public static let dialbackFeature = "urn:xmpp:features:dialback"
    public static let tls = "urn:ietf:params:xml:ns:xmpp-tls"
    public static let sasl = "urn:ietf:params:xml:ns:xmpp-sasl"
    public static let streamErrors = "urn:ietf:params:xml:ns:xmpp-streams"
    public static let stanzaErrors = "urn:ietf:params:xml:ns:xmpp-stanzas"
    public static let bidi = "urn:xmpp:bidi"
    public static let bidiFeature = "urn:xmpp:features:bidi"
    public static let xml = "http://www.w3.org/XML/1998/namespace"
}

/// An attribute as the parser saw it: local name, namespace (empty for unprefixed
/// attributes), the prefix used on the wire, and the value.
public struct XMLAttribute: Hashable, Sendable {
    public var local: String
    public var namespace: String
    public var prefix: String?
    public var value: String

    public init(local: String, namespace: String = "", prefix: String? = nil, value: String) {
        self.local = local
        self.namespace = namespace
        self.prefix = prefix
        self.value = value
    }

    public var qualifiedName: String { prefix.map { "\($0):\(local)" } ?? local }
}

/// A namespace declaration (`xmlns='…'` has a nil prefix, `xmlns:db='…'` the prefix `db`).
public struct NamespaceDeclaration: Hashable, Sendable {
    public var prefix: String?
    public var uri: String
    public init(prefix: String?, uri: String) {
        self.prefix = prefix
        self.uri = uri
    }
}

/// A compact element tree of one top-level element, bounded in depth, node count and text.
/// A class: events pass through every rule, and a reference is one retain where a struct of
/// strings and arrays would be many. It is never mutated once its event is emitted.
public final class XMLElement: @unchecked Sendable {
    // Constants once built: every rule reads them, and a read of a class's `var` is checked for
    // exclusive access at run time (about 190 instructions), a `let` is not.
    public let local: String
    public let namespace: String
    /// The prefix used on the wire (nil when the element was in a default namespace).
    public let prefix: String?
    public let attributes: [XMLAttribute]
    public let declarations: [NamespaceDeclaration]
    /// `<message/>`, `<presence/>` or `<iq/>` in jabber:server or jabber:client.
    public let isStanza: Bool
    public var children: [XMLElement] { get { _children } set { _children = newValue } }
    var _children: [XMLElement]
    public var text: String { get { _text } set { _text = newValue } }
    var _text: String
    /// True when children or text were dropped because a cap was reached.
    public var truncated: Bool { get { _truncated } set { _truncated = newValue } }
    var _truncated: Bool

    public init(local: String, namespace: String = "", prefix: String? = nil, attributes: [XMLAttribute] = [],
                declarations: [NamespaceDeclaration] = [], children: [XMLElement] = [], text: String = "",
                truncated: Bool = false) {
        self.local = local
        self.namespace = namespace
        self.prefix = prefix
        self.attributes = attributes
        self.declarations = declarations
        let n = local.utf8.count  // "iq", "message", "presence": most names are none of these lengths
        isStanza = (n == 2 || n == 7 || n == 8) && (local == "message" || local == "presence" || local == "iq")
            && (namespace == Namespace.server || namespace == Namespace.client)
        _children = children
        _text = text
        _truncated = truncated
    }

    public var qualifiedName: String { prefix.map { "\($0):\(local)" } ?? local }

    /// Domains of the `from` and `to` JIDs (nil: absent or not a JID). Every stanza rule asks:
    /// computed once, where the rules run. (Computing them on the parsing thread of `--threads 2`
    /// was measured slower: that thread, not the reading one, is the longer of the two.)
    public private(set) lazy var fromDomain: String? = self[attribute: "from"].flatMap(jidDomain)
    public private(set) lazy var toDomain: String? = self[attribute: "to"].flatMap(jidDomain)
    private var domainsResolved = false

    /// Sets `fromDomain` and `toDomain` through the cache of the stream that carried the element
    /// (the values are those computed without it); once per element, whoever asks first.
    /// Returns how much the cache's `retainedBytes` grew (the memory budget's running total).
    @discardableResult
    public func resolveDomains(_ cache: inout JIDDomainCache) -> Int {
        guard !domainsResolved else { return 0 }
        domainsResolved = true
        let before = cache.retainedBytes
        fromDomain = self[attribute: "from"].flatMap { cache.domain(ofJID: $0) }
        toDomain = self[attribute: "to"].flatMap { cache.domain(ofJID: $0) }
        return cache.retainedBytes - before
    }
    /// The `from` and `to` JIDs as compared (`normalizedJID`; empty when absent). IQ pairing asks.
    public private(set) lazy var normalizedFrom: String = normalizedJID(self[attribute: "from"] ?? "")
    public private(set) lazy var normalizedTo: String = normalizedJID(self[attribute: "to"] ?? "")
    /// The first `shortEvidenceLength` characters of the rendering: what is kept of a request
    /// while its answer is awaited (IQ get/set).
    public private(set) lazy var shortEvidence: String = renderPrefix(XMLElement.shortEvidenceLength)
    public static let shortEvidenceLength = 200

    /// The value of an unprefixed attribute.
    public subscript(attribute local: String) -> String? {
        // Lengths first: they are stored in the strings, while comparing two different names costs
        // a call (equal short names compare by their bits, which `==` tries first).
        // Through the buffer: iterating the array copied each attribute (four strings retained and
        // released) before its name was compared.
        let n = local.utf8.count
        return attributes.withUnsafeBufferPointer { buf in
            for i in buf.indices where buf[i].local.utf8.count == n && buf[i].local == local && buf[i].namespace.isEmpty {
                return buf[i].value
            }
            return nil
        }
    }

    public func hasAttribute(_ local: String) -> Bool { self[attribute: local] != nil }

    public func child(_ local: String, namespace: String? = nil) -> XMLElement? {
        children.first { $0.local == local && (namespace == nil || $0.namespace == namespace!) }
    }

    public func `is`(_ local: String, _ namespace: String) -> Bool {
        self.local == local && self.namespace == namespace
    }

    /// The text content, XML whitespace trimmed.
    public var trimmedText: String {
        var t = text
        return t.withUTF8 { u in
            let w = WireBytes(UnsafeRawBufferPointer(u))
            guard let a = w.firstOffset(where: { !isXMLSpace($0) }), let last = w.lastOffset(where: { !isXMLSpace($0) }),
                  let trimmed = w.slice(from: a, to: last + 1) else { return "" }
            return trimmed.count == w.count ? text : String(decoding: trimmed.buffer, as: UTF8.self)
        }
    }

    /// A compact XML rendering for evidence (escaped, at most `limit` characters).
    public func render(limit: Int = 400) -> String {
        var out: [UInt8] = []
        render(into: &out, limit: limit)
        return XMLElement.finish(out, limit: limit, ellipsis: true)
    }

    /// The first `length` characters of the rendering: what `String(render().prefix(length))`
    /// gives, without rendering past them.
    public func renderPrefix(_ length: Int) -> String {
        var out: [UInt8] = []
        // One allocation instead of one per doubling: every IQ get/set is rendered so.
        out.reserveCapacity(min(max(length, 0), 4096) + 64)
        render(into: &out, limit: length)
        return XMLElement.finish(out, limit: length, ellipsis: false)
    }

    /// The rendering cut to `limit` characters. UTF-8 bytes are at least as many as characters
    /// and cost nothing to count: characters are counted only past that.
    static func finish(_ out: [UInt8], limit: Int, ellipsis: Bool) -> String {
        guard out.count > limit else { return String(decoding: out, as: UTF8.self) }
        if isOneCharacterPerByte(out) {
            // Counting Characters costs tens of instructions each; here each byte is one.
            let s = String(decoding: out[..<max(limit, 0)], as: UTF8.self)
            return ellipsis ? s + "…" : s
        }
        let s = String(decoding: out, as: UTF8.self)
        guard s.count > limit else { return s }
        return ellipsis ? String(s.prefix(limit)) + "…" : String(s.prefix(limit))
    }

    /// Whether the text holds more than `limit` Characters.
    static func exceeds(_ out: [UInt8], _ limit: Int) -> Bool {
        guard out.count > limit else { return false }
        return isOneCharacterPerByte(out) || String(decoding: out, as: UTF8.self).count > limit
    }

    /// ASCII without a carriage return: every byte is a Character of its own (the one grapheme
    /// cluster ASCII can form is CR LF).
    static func isOneCharacterPerByte(_ out: [UInt8]) -> Bool {
        out.withUnsafeBufferPointer { u in
            for b in u where b >= 0x80 || b == 0x0d { return false }
            return true
        }
    }

    /// `<name xmlns…='…' attr='…'` without the closing `>` (shared with `StreamHeader.render`).
    /// Bytes, not a String: evidence is rendered for every IQ request and every finding, and a
    /// String append costs hundreds of instructions.
    static func renderStartTag(_ prefix: String?, _ local: String, _ declarations: [NamespaceDeclaration], _ attributes: [XMLAttribute],
                               into out: inout [UInt8]) {
        out.append(0x3c)
        if let prefix {
            out.append(contentsOf: prefix.utf8)
            out.append(0x3a)
        }
        out.append(contentsOf: local.utf8)
        for d in declarations {
            if let p = d.prefix {
                out.append(contentsOf: " xmlns:".utf8)
                out.append(contentsOf: p.utf8)
                out.append(contentsOf: "='".utf8)
            } else {
                out.append(contentsOf: " xmlns='".utf8)
            }
            appendEscapedXML(d.uri, to: &out)
            out.append(0x27)
        }
        for a in attributes {
            out.append(0x20)
            if let p = a.prefix {
                out.append(contentsOf: p.utf8)
                out.append(0x3a)
            }
            out.append(contentsOf: a.local.utf8)
            out.append(contentsOf: "='".utf8)
            appendEscapedXML(a.value, to: &out)
            out.append(0x27)
        }
    }

    private func render(into out: inout [UInt8], limit: Int) {
        var past = false
        render(into: &out, limit: limit, past: &past)
    }

    /// `past` becomes true once the text is known to hold more than `limit` characters: the
    /// remaining children are skipped without counting the characters again.
    private func render(into out: inout [UInt8], limit: Int, past: inout Bool) {
        if past { return }
        if XMLElement.exceeds(out, limit) {
            past = true
            return
        }
        XMLElement.renderStartTag(prefix, local, declarations, attributes, into: &out)
        if children.isEmpty && text.isEmpty && !truncated {
            out.append(contentsOf: "/>".utf8)
            return
        }
        out.append(0x3e)
        appendEscapedXML(text, to: &out)
        for c in children { c.render(into: &out, limit: limit, past: &past) }
        if truncated { out.append(contentsOf: "…".utf8) }
        out.append(contentsOf: "</".utf8)
        if let prefix {
            out.append(contentsOf: prefix.utf8)
            out.append(0x3a)
        }
        out.append(contentsOf: local.utf8)
        out.append(0x3e)
    }
}

/// `escapeXML` into UTF-8 bytes.
func appendEscapedXML(_ s: String, to out: inout [UInt8]) {
    // On the contiguous UTF-8 of a native string: iterating `String.UTF8View` costs ~10
    // instructions a byte.
    var s = s
    let done = s.withUTF8 { u -> Bool in
        for b in u where b == 0x3C || b == 0x3E || b == 0x26 || b == 0x27 || b == 0x22 { return false }
        out.append(contentsOf: u)
        return true
    }
    if done { return }
    for u in s.utf8 {
        switch u {
        case 0x3c: out.append(contentsOf: "&lt;".utf8)
        case 0x3e: out.append(contentsOf: "&gt;".utf8)
        case 0x26: out.append(contentsOf: "&amp;".utf8)
        case 0x27: out.append(contentsOf: "&apos;".utf8)
        case 0x22: out.append(contentsOf: "&quot;".utf8)
        default: out.append(u)
        }
    }
}

/// Escapes the XML special characters.
public func escapeXML(_ s: String) -> String {
    var needs = false
    for u in s.utf8 where u == 0x3C || u == 0x3E || u == 0x26 || u == 0x27 || u == 0x22 { needs = true; break }
    guard needs else { return s }
    var out = ""
    out.reserveCapacity(s.utf8.count + 8)
    for ch in s.unicodeScalars {
        switch ch {
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "&": out += "&amp;"
        case "'": out += "&apos;"
        case "\"": out += "&quot;"
        default: out.unicodeScalars.append(ch)
        }
    }
    return out
}

/// A domain as compared: RFC 7622 §3.2 case-folds domainparts, and a trailing dot names the
/// same domain. ASCII is folded here; other scripts get Unicode lower-casing (an approximation of
/// IDNA2008/UTS 46 mapping, which would need an IDNA library). Returns the string itself when it
/// is already in that form (the common case: no allocation).
public func normalizedDomain(_ domain: String) -> String {
    var d = domain
    let plain = d.withUTF8 { isFolded(UnsafeRawBufferPointer($0)) }
    if plain { return domain }
    // ASCII (nearly every domain): folded byte by byte; `lowercased()` costs ~17,000 instructions.
    if let folded = d.withUTF8({ u -> String? in
        var out = [UInt8](u)
        for i in out.indices {
            if out[i] >= 0x80 { return nil }
            if out[i] >= 0x41 && out[i] <= 0x5a { out[i] += 0x20 }
        }
        if out.count > 1, out.last == 0x2e { out.removeLast() }
        return String(decoding: out, as: UTF8.self)
    }) {
        return folded
    }
    if let known = FoldedDomains.shared.folded(domain) { return known }
    var s = domain.lowercased()
    if s.hasSuffix("."), s.count > 1 { s.removeLast() }
    FoldedDomains.shared.remember(domain, s)
    return s
}

/// Domains beyond ASCII, folded once per distinct value: Unicode lower-casing costs ~17,000
/// instructions, and a server's few internationalised domains come back in stanza after stanza.
/// `Dictionary` hashes with a per-process seed, so crafted names cannot pile up in one bucket;
/// the table is emptied when full, and only names of DNS length are kept. Any thread may fold: a
/// pthread mutex guards it (one ThreadSanitizer sees; it did not see `Synchronization.Mutex`'s).
private final class FoldedDomains: @unchecked Sendable {
    static let shared = FoldedDomains()
    static let maxNames = 1024
    static let maxNameBytes = 255

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var table: [String: String] = [:]

    private init() { pthread_mutex_init(mutex, nil) }

    func folded(_ domain: String) -> String? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return table[domain]
    }

    func remember(_ domain: String, _ folded: String) {
        guard domain.utf8.count <= Self.maxNameBytes else { return }
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if table.count >= Self.maxNames { table.removeAll() }
        table[domain] = folded
    }
}

/// Whether `normalizedDomain` leaves these bytes as they are: no upper-case ASCII, nothing
/// beyond ASCII, no trailing dot.
@inline(__always)
private func isFolded(_ u: UnsafeRawBufferPointer) -> Bool {
    if let last = u.last, last == 0x2e { return false }
    for b in u where (b >= 0x41 && b <= 0x5a) || b >= 0x80 { return false }
    return true
}

/// A JID as compared: localpart and domainpart case-folded (RFC 7622 §3.2, §3.3: the
/// UsernameCaseMapped profile maps localparts to lower case), the resource kept as sent.
public func normalizedJID(_ jid: String) -> String {
    // The resource starts at the first '/' byte (RFC 7622 §3.1). Searched in UTF-8: every IQ asks
    // twice, and a Character search costs thousands of instructions per JID.
    var j = jid
    return j.withUTF8 { u -> String in
        let w = WireBytes(UnsafeRawBufferPointer(u))
        guard let slash = w.firstOffset(of: 0x2f) else { return normalizedDomain(jid) }
        if isFolded(w.prefix(slash).buffer) { return jid }
        let bare = String(decoding: w.prefix(slash).buffer, as: UTF8.self)
        let folded = normalizedDomain(bare)
        if folded == bare { return jid }
        return folded + String(decoding: w.dropFirst(slash).buffer, as: UTF8.self)
    }
}

/// The normalised domain part of a JID (`local@domain/resource`; see `normalizedDomain`), nil
/// when the JID is not parsable. Works on UTF-8 bytes: it runs for every stanza, and Character
/// indexing is slow.
public func jidDomain(_ jid: String) -> String? {
    var jid = jid
    return jid.withUTF8 { u -> String? in
        let (start, end) = jidDomainBounds(u)
        return jidDomain(UnsafeBufferPointer(rebasing: u[start..<end]))
    }
}

/// Where the domain part of a JID's UTF-8 lies: after the last '@' before the first '/' (the
/// resource starts there).
@inline(__always)
func jidDomainBounds(_ u: UnsafeBufferPointer<UInt8>) -> (start: Int, end: Int) {
    // memchr rather than byte loops: every stanza's two JIDs come here, and the
    // loops cost ~500 instructions a JID on the 100 MB bench capture.
    guard let base = u.baseAddress, !u.isEmpty else { return (0, 0) }
    let origin = UnsafeRawPointer(base)
    let end = memchr(origin, 0x2f, u.count).map { UnsafeRawPointer($0) - origin } ?? u.count
    // The last '@' before the resource (glibc's memrchr is not exported to Swift): a JID has one.
    var start = 0
    while start < end, let at = memchr(origin + start, 0x40, end - start) {
        start = UnsafeRawPointer(at) - origin + 1
    }
    return (start, end)
}

/// `jidDomain` of a JID whose domain part is `bytes`: the answer depends on nothing else (which
/// is what lets `JIDDomainCache` keep it per distinct part).
func jidDomain(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
    guard !bytes.isEmpty, bytes.count <= 1023 else { return nil }
    if bytes.contains(where: { $0 == 0x20 || $0 == 0x09 }) { return nil }
    let domain = String(decoding: bytes, as: UTF8.self)
    return isFolded(UnsafeRawBufferPointer(bytes)) ? domain : normalizedDomain(domain)
}
