/// HTML (and inline SVG) under construction, escaped by construction.
///
/// There are exactly two ways to put characters into the page:
/// - **Text and attribute values** (`text(_:)`, the values of `Attributes`): any `String`,
///   always passed through `htmlEscape` — wire text can only enter this way.
/// - **Markup from the source** (tag and attribute names, `constant(_:)`): `StaticString`, i.e.
///   literals written in this program. A string built at run time does not type-check there,
///   so no value can reach the page unescaped by mistake.
///
/// Attributes keep the order they are written in (`KeyValuePairs`), so the output is stable.
public struct HTMLBuilder {
    public typealias Attributes = KeyValuePairs<StaticString, String>

    public private(set) var output = ""

    public init() {}

    /// `<name a="v"…>`, what `body` adds, `</name>`.
    public mutating func element(_ name: StaticString, _ attributes: Attributes = [:], _ body: (inout HTMLBuilder) -> Void) {
        open(name, attributes)
        body(&self)
        close(name)
    }

    /// `<name a="v"…>text</name>`, the text escaped.
    public mutating func element(_ name: StaticString, _ attributes: Attributes = [:], text: String) {
        open(name, attributes)
        self.text(text)
        close(name)
    }

    /// An element without end tag (`<meta …>`, `<input … checked>`). `flags` are attributes
    /// without value (boolean attributes), written after the others.
    public mutating func void(_ name: StaticString, _ attributes: Attributes = [:], flags: [StaticString] = []) {
        start(name, attributes)
        for f in flags {
            output += " "
            output += f.description
        }
        output += ">"
    }

    /// A self-closed element (`<rect …/>`), for SVG inside the page.
    public mutating func empty(_ name: StaticString, _ attributes: Attributes = [:]) {
        start(name, attributes)
        output += "/>"
    }

    /// Text content, escaped.
    public mutating func text(_ s: String) { output += htmlEscape(s) }

    /// A number as text (nothing to escape).
    public mutating func text<T: BinaryInteger>(_ n: T) { output += String(n) }

    /// Markup written in the source: punctuation, line breaks, the page's constant CSS and script.
    public mutating func constant(_ s: StaticString) { output += s.description }

    /// Appends markup another builder made (a fragment built with the same guarantees).
    public mutating func append(_ other: HTMLBuilder) { output += other.output }

    private mutating func open(_ name: StaticString, _ attributes: Attributes) {
        start(name, attributes)
        output += ">"
    }

    private mutating func start(_ name: StaticString, _ attributes: Attributes) {
        output += "<"
        output += name.description
        for (key, value) in attributes {
            output += " "
            output += key.description
            output += "=\""
            output += htmlEscape(value)
            output += "\""
        }
    }

    private mutating func close(_ name: StaticString) {
        output += "</"
        output += name.description
        output += ">"
    }
}

/// Escapes text for HTML element content and quoted attribute values (also inside inline SVG):
/// `&`, `<`, `>`, `"` and `'` become character references, and control characters (ESC, BEL,
/// CR, C1 controls, bidi overrides, line/paragraph separators) become visible `\x1b`-style
/// text, as `terminalSafe` shows them. Tab and line feed are kept. `HTMLBuilder` passes every
/// run-time string through here.
public func htmlEscape(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count + 16)
    for u in s.unicodeScalars {
        switch u {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        case "\n", "\t": out.unicodeScalars.append(u)
        default:
            let v = u.value
            if v < 0x20 || v == 0x7f || (v >= 0x80 && v < 0xa0) || v == 0x2028 || v == 0x2029
                || (v >= 0x202a && v <= 0x202e) || (v >= 0x2066 && v <= 0x2069) || v == 0xfeff {
                let hex = String(v, radix: 16)
                out += v > 0xff ? "\\u{\(hex)}" : "\\x" + (hex.count == 1 ? "0" : "") + hex
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out
}
