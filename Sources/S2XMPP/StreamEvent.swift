import S2Model

/// The attributes of a stream header (`<stream:stream …>`), as sent.
public struct StreamHeader: Sendable, Hashable {
    public var local: String
    public var namespace: String
    public var prefix: String?
    public var attributes: [XMLAttribute]
    /// Every namespace declaration on the header, with its prefix, in wire order.
    public var declarations: [NamespaceDeclaration]
    /// Whether an XML declaration (`<?xml …?>`) preceded the header, and the encoding it named.
    public var hadXMLDeclaration = false
    public var declaredEncoding: String?

    public init(local: String, namespace: String, prefix: String?, attributes: [XMLAttribute], declarations: [NamespaceDeclaration]) {
        self.local = local
        self.namespace = namespace
        self.prefix = prefix
        self.attributes = attributes
        self.declarations = declarations
    }

    public subscript(attribute local: String) -> String? {
        for a in attributes where a.local == local && a.namespace.isEmpty { return a.value }
        return nil
    }

    public var to: String? { self[attribute: "to"] }
    public var from: String? { self[attribute: "from"] }
    public var id: String? { self[attribute: "id"] }
    public var version: String? { self[attribute: "version"] }
    public var lang: String? {
        attributes.first { $0.local == "lang" && $0.namespace == Namespace.xml }?.value
    }

    /// The default namespace declared on the header (`xmlns='…'`).
    public var defaultNamespace: String? { declarations.first { $0.prefix == nil }?.uri }

    /// The URI bound to `prefix` on the header.
    public func namespace(forPrefix prefix: String) -> String? {
        declarations.first { $0.prefix == prefix }?.uri
    }

    /// The prefixes bound to `uri` on the header.
    public func prefixes(for uri: String) -> [String] {
        declarations.compactMap { $0.uri == uri ? $0.prefix : nil }
    }

    public var isStreamRoot: Bool { local == "stream" && namespace == Namespace.streams }

    /// The header's start tag as sent (escaped, at most `limit` characters).
    public func render(limit: Int = 400) -> String {
        var out: [UInt8] = []
        XMLElement.renderStartTag(prefix, local, declarations, attributes, into: &out)
        out.append(0x3e)
        return XMLElement.finish(out, limit: limit, ellipsis: true)
    }
}

/// Kinds of XML that RFC 6120 §11.1 forbids on an XMPP stream.
public enum RestrictedXML: Sendable, Hashable {
    case comment
    case processingInstruction(target: String)
    case doctype(name: String)
    case entityReference(name: String)
    /// An XML declaration naming an encoding other than UTF-8.
    case nonUTF8Encoding(declared: String)
    /// Bytes that are not valid UTF-8.
    case invalidUTF8
}

/// What the XMPP stream layer reports for one direction of a connection.
public enum XMPPEventKind: Sendable {
    /// A stream header (the first one, or a new one after a restart).
    case streamOpened(StreamHeader)
    /// A top-level element (child of the stream root) is complete.
    case element(XMLElement)
    /// `</stream:stream>`.
    case streamClosed
    /// Restricted XML was sent; the parser continues (or resynchronises after a DTD).
    case restricted(RestrictedXML)
    /// The bytes are not well-formed XML: expat's error code, its message, and the stream offset.
    case notWellFormed(code: Int, reason: String, offset: UInt64)
    /// Non-whitespace data after this side closed its stream.
    case dataAfterClose
    /// The direction switched to TLS after `<proceed/>`; `looksLikeTLS` tells whether the first
    /// bytes are a TLS record header (0x16 0x03).
    case tlsStarted(looksLikeTLS: Bool)
    /// The capture picked the direction up after its stream began: what follows is parsed in an
    /// assumed s2s context (`jabber:server`, the `stream` and `db` prefixes), and the header,
    /// features and dialback before it were never seen.
    case pickedUp
    /// `length` bytes of the direction were lost (a capture gap): state carried by them is unknown.
    case bytesLost(length: UInt64)
}

/// One event with the span of the stream that carried it. A class: every event visits the model,
/// the pending expectations and a dozen rules, and passing a reference costs one retain.
public final class XMPPEvent: @unchecked Sendable {
    public let kind: XMPPEventKind
    public let direction: Direction
    /// Stream offsets of the first byte and one past the last byte.
    public let startOffset: UInt64
    public let endOffset: UInt64
    /// First and last frames that carried those bytes.
    public let firstFrame: FrameRef
    public let lastFrame: FrameRef
    /// The first element after parsing resumed without context (mid-stream pickup, gap): it may
    /// be a child of an element whose start was lost, so no rule judges it.
    public let tentative: Bool

    public init(kind: XMPPEventKind, direction: Direction, startOffset: UInt64, endOffset: UInt64,
                firstFrame: FrameRef, lastFrame: FrameRef, tentative: Bool = false) {
        self.kind = kind
        self.direction = direction
        self.startOffset = startOffset
        self.endOffset = endOffset
        self.firstFrame = firstFrame
        self.lastFrame = lastFrame
        self.tentative = tentative
    }
}

/// Bounds of the XMPP stream layer.
public struct XMLLimits: Sendable {
    /// Bytes a single top-level element may span; past it the tree keeps no more content.
    public var maxElementBytes = 1 << 20
    /// Element nodes kept per top-level element.
    public var maxNodes = 256
    /// Depth (below the top-level element) to which the tree is kept.
    public var maxTreeDepth = 8
    /// Characters of text kept per element.
    public var maxTextBytes = 4096
    /// Nesting beyond this depth stops the parse of the direction (resynchronised later).
    public var maxNestingDepth = 1024
    /// Bytes expat may hold without producing an event (one giant tag or comment). Small, because
    /// each new chunk re-scans the pending token.
    public var maxTokenBytes = 256 << 10
    public init() {}
}
