/// What a value built from the wire holds in memory, estimated from its parts: the UTF-8 bytes of
/// its strings and a fixed overhead per object and per array entry (docs/LIMITS.md). The memory
/// budget charges what an open connection keeps of what its peers sent, so a peer that sends long
/// headers or features costs its real share instead of a flat per-connection figure. An upper
/// estimate, cheap enough to take whenever such a value is kept (never per stanza).
extension XMLAttribute {
    public var retainedBytes: Int {
        64 + local.utf8.count + namespace.utf8.count + (prefix?.utf8.count ?? 0) + value.utf8.count
    }
}

extension NamespaceDeclaration {
    public var retainedBytes: Int { 48 + (prefix?.utf8.count ?? 0) + uri.utf8.count }
}

extension StreamHeader {
    public var retainedBytes: Int {
        var n = 128 + local.utf8.count + namespace.utf8.count + (prefix?.utf8.count ?? 0) + (declaredEncoding?.utf8.count ?? 0)
        for a in attributes { n += a.retainedBytes }
        for d in declarations { n += d.retainedBytes }
        return n
    }
}

extension XMLElement {
    /// The whole tree: its size is bounded by `XMLLimits` (nodes, depth, text), so is the walk.
    public var retainedBytes: Int {
        var n = 96 + local.utf8.count + namespace.utf8.count + (prefix?.utf8.count ?? 0) + _text.utf8.count
        for a in attributes { n += a.retainedBytes }
        for d in declarations { n += d.retainedBytes }
        for c in _children { n += c.retainedBytes }
        return n
    }
}
