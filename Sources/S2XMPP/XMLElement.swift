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
    public var local: String
    public var namespace: String
    /// The prefix used on the wire (nil when the element was in a default namespace).
    public var prefix: String?
    public var attributes: [XMLAttribute]
    public var declarations: [NamespaceDeclaration]
    public var children: [XMLElement]
    public var text: String
    /// True when children or text were dropped because a cap was reached.
    public var truncated: Bool

    public init(local: String, namespace: String = "", prefix: String? = nil, attributes: [XMLAttribute] = [],
                declarations: [NamespaceDeclaration] = [], children: [XMLElement] = [], text: String = "",
                truncated: Bool = false) {
        self.local = local
        self.namespace = namespace
        self.prefix = prefix
        self.attributes = attributes
        self.declarations = declarations
        self.children = children
        self.text = text
        self.truncated = truncated
    }

    public var qualifiedName: String { prefix.map { "\($0):\(local)" } ?? local }

    /// Domains of the `from` and `to` JIDs (nil: absent or not a JID). Every stanza rule asks:
    /// the stream decoder computes them once, on the parsing thread.
    public private(set) lazy var fromDomain: String? = self[attribute: "from"].flatMap(jidDomain)
    public private(set) lazy var toDomain: String? = self[attribute: "to"].flatMap(jidDomain)
    /// `<message/>`, `<presence/>` or `<iq/>` in jabber:server or jabber:client.
    public private(set) lazy var isStanza: Bool = (local == "message" || local == "presence" || local == "iq")
        && (namespace == Namespace.server || namespace == Namespace.client)

    /// The value of an unprefixed attribute.
    public subscript(attribute local: String) -> String? {
        for a in attributes where a.local == local && a.namespace.isEmpty { return a.value }
        return nil
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
        var out = ""
        render(into: &out, limit: limit)
        if out.count > limit { return String(out.prefix(limit)) + "…" }
        return out
    }

    /// `<name xmlns…='…' attr='…'` without the closing `>` (shared with `StreamHeader.render`).
    static func renderStartTag(_ qualifiedName: String, _ declarations: [NamespaceDeclaration], _ attributes: [XMLAttribute],
                               into out: inout String) {
        out += "<" + qualifiedName
        for d in declarations {
            out += d.prefix.map { " xmlns:\($0)='" } ?? " xmlns='"
            out += escapeXML(d.uri) + "'"
        }
        for a in attributes { out += " \(a.qualifiedName)='\(escapeXML(a.value))'" }
    }

    private func render(into out: inout String, limit: Int) {
        if out.count > limit { return }
        XMLElement.renderStartTag(qualifiedName, declarations, attributes, into: &out)
        if children.isEmpty && text.isEmpty && !truncated {
            out += "/>"
            return
        }
        out += ">"
        out += escapeXML(text)
        for c in children { c.render(into: &out, limit: limit) }
        if truncated { out += "…" }
        out += "</\(qualifiedName)>"
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
    let plain = d.withUTF8 { u -> Bool in
        if let last = u.last, last == 0x2e { return false }
        for b in u where (b >= 0x41 && b <= 0x5a) || b >= 0x80 { return false }
        return true
    }
    if plain { return domain }
    var s = domain.lowercased()
    if s.hasSuffix("."), s.count > 1 { s.removeLast() }
    return s
}

/// A JID as compared: localpart and domainpart case-folded (RFC 7622 §3.2, §3.3: the
/// UsernameCaseMapped profile maps localparts to lower case), the resource kept as sent.
public func normalizedJID(_ jid: String) -> String {
    guard let slash = jid.firstIndex(of: "/") else { return normalizedDomain(jid) }
    return normalizedDomain(String(jid[..<slash])) + jid[slash...]
}

/// The normalised domain part of a JID (`local@domain/resource`; see `normalizedDomain`), nil
/// when the JID is not parsable. Works on UTF-8 bytes: it runs for every stanza, and Character
/// indexing is slow.
public func jidDomain(_ jid: String) -> String? {
    var jid = jid
    return jid.withUTF8 { u -> String? in
        let w = WireBytes(UnsafeRawBufferPointer(u))
        let end = w.firstOffset(of: 0x2f) ?? w.count  // the resource starts at the first '/'
        let bare = w.prefix(end)
        let start = (bare.lastOffset(where: { $0 == 0x40 }) ?? -1) + 1  // the domain after the last '@'
        guard let domain = bare.slice(from: start, to: end), !domain.isEmpty, domain.count <= 1023 else { return nil }
        if domain.contains(where: { $0 == 0x20 || $0 == 0x09 || $0 == 0x40 }) { return nil }
        return normalizedDomain(String(decoding: domain.buffer, as: UTF8.self))
    }
}
