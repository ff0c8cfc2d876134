import S2Model
import S2XMPP

/// An element or stream header as a fact carries it: XML text that the project's own stream
/// decoder (expat) parses back into the same tree, with the namespace bindings it inherited
/// from its stream (`context`) and the places where the sensor's decoder cut it (`truncated`).
public struct SerializedElement: Sendable, Equatable {
    public var xml: String
    /// Prefix (nil: the default namespace) → URI bound outside the element.
    public var context: [NamespaceDeclaration]
    /// Child-index paths (`[]` is the element itself) of the nodes marked truncated.
    public var truncated: [[Int]]
}

public enum FactXML {
    /// Serialises a top-level element so that `parseElement` rebuilds it: every node keeps its
    /// prefix, namespace, declarations, attributes and text (text before children: the tree keeps
    /// a node's character data as one string). Namespaces a node inherited from outside the element
    /// are bound on the wrapper (`context`); a node whose namespace is known but whose declaration
    /// the decoder did not keep (a stanza's children) gets a declaration the decoder drops again.
    public static func serialize(_ el: XMLElement) -> SerializedElement {
        var out = ""
        var context: [NamespaceDeclaration] = []
        var truncated: [[Int]] = []
        var path: [Int] = []
        // Bindings in scope: the context's, then each open node's.
        var scope: [[NamespaceDeclaration]] = []
        func lookup(_ prefix: String?) -> String? {
            for level in scope.reversed() {
                if let d = level.last(where: { $0.prefix == prefix }) { return d.uri }
            }
            return context.last(where: { $0.prefix == prefix })?.uri
        }
        func bind(_ prefix: String?, _ uri: String, local: inout [NamespaceDeclaration]) {
            if let known = lookup(prefix) ?? local.last(where: { $0.prefix == prefix })?.uri {
                if known != uri { local.append(NamespaceDeclaration(prefix: prefix, uri: uri)) }
                return
            }
            if prefix == nil && uri.isEmpty { return }
            // An outer binding of a prefix no enclosing node uses changes nothing else; the default
            // namespace goes outside only for the top element (enclosing nodes may use none).
            if prefix != nil || scope.count == 1 {
                context.append(NamespaceDeclaration(prefix: prefix, uri: uri))
            } else {
                local.append(NamespaceDeclaration(prefix: prefix, uri: uri))
            }
        }
        func node(_ e: XMLElement) {
            if e.truncated { truncated.append(path) }
            var local = e.declarations
            scope.append(local)
            if e.prefix != "xml" { bind(e.prefix, e.namespace, local: &local) }
            for a in e.attributes where a.prefix != nil && a.prefix != "xml" { bind(a.prefix, a.namespace, local: &local) }
            scope[scope.count - 1] = local
            out += "<" + e.qualifiedName
            for d in local {
                out += d.prefix.map { " xmlns:\($0)='" } ?? " xmlns='"
                escape(d.uri, attribute: true, into: &out)
                out += "'"
            }
            for a in e.attributes {
                out += " " + a.qualifiedName + "='"
                escape(a.value, attribute: true, into: &out)
                out += "'"
            }
            if e.children.isEmpty && e.text.isEmpty {
                out += "/>"
            } else {
                out += ">"
                escape(e.text, attribute: false, into: &out)
                for (i, c) in e.children.enumerated() {
                    path.append(i)
                    node(c)
                    path.removeLast()
                }
                out += "</" + e.qualifiedName + ">"
            }
            scope.removeLast()
        }
        node(el)
        return SerializedElement(xml: out, context: context, truncated: truncated)
    }

    /// A stream header's start tag, complete (its declarations and attributes as sent).
    public static func serialize(_ h: StreamHeader) -> String {
        var out = "<" + (h.prefix.map { "\($0):\(h.local)" } ?? h.local)
        for d in h.declarations {
            out += d.prefix.map { " xmlns:\($0)='" } ?? " xmlns='"
            escape(d.uri, attribute: true, into: &out)
            out += "'"
        }
        for a in h.attributes {
            out += " " + a.qualifiedName + "='"
            escape(a.value, attribute: true, into: &out)
            out += "'"
        }
        return out + ">"
    }

    /// Escapes for re-parsing: markup characters, and in attribute values the whitespace that
    /// attribute-value normalisation would turn into spaces; `\r` everywhere (line-end handling).
    static func escape(_ s: String, attribute: Bool, into out: inout String) {
        // Fast path: nothing to escape (the common case) is appended in one piece.
        var plain = true
        for u in s.utf8 where u == 0x3C || u == 0x3E || u == 0x26 || u == 0x0D || (attribute && (u == 0x27 || u == 0x09 || u == 0x0A)) {
            plain = false
            break
        }
        if plain {
            out += s
            return
        }
        for u in s.unicodeScalars {
            switch u {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "'" where attribute: out += "&apos;"
            case "\r": out += "&#13;"
            case "\t" where attribute: out += "&#9;"
            case "\n" where attribute: out += "&#10;"
            default: out.unicodeScalars.append(u)
            }
        }
    }

    /// The wrapper's root: a namespace no element of a stream uses.
    static let wrapperNamespace = "urn:s2scope:facts:wrapper"

    /// Parses a serialised element back with the stream decoder; nil if it is not one element.
    public static func parseElement(_ s: SerializedElement, limits: XMLLimits = .init()) -> XMLElement? {
        var wrapper = "<s2scope-facts-wrapper:w xmlns:s2scope-facts-wrapper='\(wrapperNamespace)'"
        for d in s.context {
            wrapper += d.prefix.map { " xmlns:\($0)='" } ?? " xmlns='"
            escape(d.uri, attribute: true, into: &wrapper)
            wrapper += "'"
        }
        wrapper += ">"
        let events = decode(wrapper + s.xml, limits: limits)
        guard events.count == 2, case .streamOpened = events[0], case .element(let el) = events[1] else { return nil }
        for p in s.truncated {
            var n = el
            var ok = true
            for i in p {
                guard i >= 0, i < n.children.count else { ok = false; break }
                n = n.children[i]
            }
            if ok { n.truncated = true }
        }
        return el
    }

    /// Parses a serialised stream header back; the XML declaration is not part of the text.
    public static func parseHeader(_ xml: String, hadXMLDeclaration: Bool, declaredEncoding: String?) -> StreamHeader? {
        let events = decode(xml, limits: .init())
        guard events.count == 1, case .streamOpened(var h) = events[0] else { return nil }
        h.hadXMLDeclaration = hadXMLDeclaration
        h.declaredEncoding = declaredEncoding
        return h
    }

    private final class Collector: XMPPEventSink {
        var kinds: [XMPPEventKind] = []
        var failed = false
        func xmppEvent(_ event: XMPPEvent) {
            switch event.kind {
            case .streamOpened, .element: kinds.append(event.kind)
            default: failed = true
            }
        }
        func xmppAnomaly(_ anomaly: Anomaly) { failed = true }
    }

    private static func decode(_ text: String, limits: XMLLimits) -> [XMPPEventKind] {
        let sink = Collector()
        let decoder = XMPPStreamDecoder(direction: .clientToServer, limits: limits, sink: sink)
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { b in
            decoder.feed(UnsafeRawBufferPointer(b), at: 0, frame: FrameRef(input: 0, number: 0, time: .zero))
        }
        return sink.failed ? [] : sink.kinds
    }
}
