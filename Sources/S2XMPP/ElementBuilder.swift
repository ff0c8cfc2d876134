import S2Model

/// Builds the compact tree of one top-level element from the parser's callbacks, and owns the
/// limits of that tree: nodes, tree depth, text bytes and element bytes (`XMLLimits`). It knows
/// nothing of expat, offsets of the stream or resynchronisation: the stream decoder tells it where
/// each event lies and at which depth (1 is the stream root, 2 a top-level element).
///
/// A value type held by the decoder: one exclusive access per callback, and testable alone.
struct ElementBuilder {
    enum Start: Equatable {
        /// The element entered the tree.
        case kept
        /// A stanza entered the tree: from here to its end only its children's names are kept,
        /// never text or declarations.
        case keptStanza
        /// Past a limit, or below what the tree keeps: counted, not kept.
        case skipped
    }

    let limits: XMLLimits
    /// Stream offset where the current (or last) top-level element started.
    private(set) var elementStart: UInt64 = 0
    private var stack: [XMLElement] = []
    private var nodeCount = 0
    /// Depth below the top-level element kept for the current element (stanzas: 1).
    private var keptDepth: Int
    /// Whether text is kept for the current element (not for stanzas).
    private var keepText = true
    private var pendingDeclarations: [NamespaceDeclaration] = []

    init(limits: XMLLimits) {
        self.limits = limits
        keptDepth = limits.maxTreeDepth
    }

    /// A new parser: nothing of the old one's tree or declarations survives.
    mutating func reset() {
        stack = []
        pendingDeclarations = []
    }

    /// The parser is gone: the element being built with it is too.
    mutating func dropTree() { stack = [] }

    /// The stream's offsets start again (a restart inside TLS).
    mutating func resetOffsets() { elementStart = 0 }

    /// Whether an element starting now, one level below `depth`, enters the tree.
    func keepsNextStart(below depth: Int, end: UInt64) -> Bool {
        let d = depth + 1
        if d == 2 { return true }
        return stack.count == d - 2 && d - 2 <= keptDepth && nodeCount < limits.maxNodes
            && end - elementStart <= UInt64(limits.maxElementBytes)
    }

    /// A namespace declaration for the element about to start (declarations come before it).
    mutating func declare(prefix: String?, uri: String) {
        pendingDeclarations.append(NamespaceDeclaration(prefix: prefix, uri: uri))
    }

    /// The declarations of the element that starts now, handed over (the stream header's).
    mutating func takeDeclarations() -> [NamespaceDeclaration] {
        let d = pendingDeclarations
        pendingDeclarations = []
        return d
    }

    /// An element starts at `depth` (≥ 2) between stream offsets `start` and `end`.
    mutating func start(depth d: Int, at start: UInt64, end: UInt64, name: UnsafePointer<CChar>,
                        attributes atts: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Start {
        let kept = keepsNextStart(below: d - 1, end: end)
        if d == 2 {
            elementStart = start
            nodeCount = 0
            keptDepth = limits.maxTreeDepth
            keepText = true
            stack.removeAll(keepingCapacity: true)
        }
        guard kept else {
            pendingDeclarations.removeAll(keepingCapacity: true)
            if !stack.isEmpty && keepText { stack[stack.count - 1].truncated = true }
            return .skipped
        }
        // Names, attributes and text become Strings only for the nodes the tree keeps; a stanza's
        // children keep only their names (the IQ rules count them and look for <error/>).
        let (ns, local, prefix) = splitName(name)
        nodeCount += 1
        if d == 3 && !keepText {
            pendingDeclarations.removeAll(keepingCapacity: true)
            stack.append(XMLElement(local: local, namespace: ns, prefix: prefix))
            return .kept
        }
        let decls = pendingDeclarations
        pendingDeclarations = []
        var attributes: [XMLAttribute] = []
        ElementBuilder.readAttributes(atts, into: &attributes)
        var result = Start.kept
        if d == 2 && (local == "message" || local == "presence" || local == "iq")
            && (ns == Namespace.server || ns == Namespace.client) {
            // Stanzas: rules need their addresses and the names of their children, never their
            // content; keeping no text is faster and keeps message bodies out of reports.
            keptDepth = 1
            keepText = false
            result = .keptStanza
        }
        stack.append(XMLElement(local: local, namespace: ns, prefix: prefix, attributes: attributes, declarations: decls))
        return result
    }

    /// The element at `depth` ends: the finished top-level element when `depth` is 2 and it was
    /// kept, else nil.
    mutating func end(depth: Int) -> XMLElement? {
        guard stack.count == depth - 1 else { return nil }
        let done = stack.removeLast()
        if stack.isEmpty { return done }
        // Taken out, grown, put back: growing the array inside an access to the element's property
        // would keep that property's run-time exclusivity check (docs/PIPELINE.md).
        let parent = stack[stack.count - 1]
        var children = parent._children
        parent._children = []
        children.append(done)
        parent._children = children
        return nil
    }

    /// Character data inside the element at `depth`.
    mutating func text(depth: Int, _ s: UnsafePointer<CChar>, _ len: Int32) {
        guard keepText, depth >= 2, stack.count == depth - 1, len > 0 else { return }
        let i = stack.count - 1
        if stack[i].text.utf8.count + Int(len) > limits.maxTextBytes {
            stack[i].truncated = true
            return
        }
        let element = stack[i]
        var text = element._text  // taken out and put back, as the children in `end`
        element._text = ""
        text += String(decoding: UnsafeRawBufferPointer(start: s, count: Int(len)), as: UTF8.self)
        element._text = text
    }

    static func readAttributes(_ atts: UnsafeMutablePointer<UnsafePointer<CChar>?>?, into out: inout [XMLAttribute]) {
        guard let atts else { return }
        var n = 0
        while atts[n] != nil { n += 2 }
        if n == 0 { return }
        out.reserveCapacity(n / 2)  // grown one by one, the array was reallocated for most elements
        var i = 0
        while let n = atts[i], let v = atts[i + 1] {
            let (ns, local, prefix) = splitName(n)
            out.append(XMLAttribute(local: local, namespace: ns, prefix: prefix, value: String(cString: v)))
            i += 2
        }
    }
}
