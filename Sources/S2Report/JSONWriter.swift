/// A small streaming JSON writer: exact control over field order and escaping, no Foundation.
public struct JSONWriter {
    /// The text written so far (what a streaming writer has not handed over yet).
    public var output: String { String(decoding: buffer, as: UTF8.self) }
    /// UTF-8 bytes: appending a few bytes to an array costs a fraction of a `String` append, and a
    /// report is hundreds of thousands of them.
    private var buffer: [UInt8] = []
    private var needsComma: [Bool] = [false]
    private let pretty: Bool
    private var depth = 0
    /// "\n" and the indentation of each depth, built once.
    private var newlines: [String] = ["\n"]

    private mutating func newline() {
        while newlines.count <= depth { newlines.append(newlines[newlines.count - 1] + "  ") }
        buffer.append(contentsOf: newlines[depth].utf8)
    }

    /// Where full chunks go when the writer streams (nil: everything stays in `output`).
    private let sink: ((String) -> Void)?

    public init(pretty: Bool = true) {
        self.pretty = pretty
        sink = nil
    }

    /// A writer that hands its text to `sink` in chunks of about 64 KiB, at element boundaries:
    /// a large report never sits in memory as one string.
    public init(pretty: Bool = true, streamingTo sink: @escaping (String) -> Void) {
        self.pretty = pretty
        self.sink = sink
    }

    private mutating func flushIfFull() {
        guard let sink, buffer.count >= 1 << 16 else { return }
        sink(output)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Hands what is left to the sink (streaming writers).
    public mutating func finish() {
        guard let sink, !buffer.isEmpty else { return }
        sink(output)
        buffer.removeAll(keepingCapacity: true)
    }

    private mutating func separator() {
        if needsComma[needsComma.count - 1] { buffer.append(0x2c) }
        needsComma[needsComma.count - 1] = true
        if pretty && depth > 0 { newline() }
    }

    public mutating func beginObject(_ key: String? = nil) {
        if let key { self.key(key) } else { separator() }
        buffer.append(0x7b)
        depth += 1
        needsComma.append(false)
    }

    public mutating func endObject() {
        let had = needsComma.removeLast()
        depth -= 1
        if pretty && had { newline() }
        buffer.append(0x7d)
        flushIfFull()
    }

    public mutating func beginArray(_ key: String? = nil) {
        if let key { self.key(key) } else { separator() }
        buffer.append(0x5b)
        depth += 1
        needsComma.append(false)
    }

    public mutating func endArray() {
        let had = needsComma.removeLast()
        depth -= 1
        if pretty && had { newline() }
        buffer.append(0x5d)
        flushIfFull()
    }

    private mutating func key(_ k: String) {
        separator()
        JSONWriter.appendString(k, to: &buffer)
        buffer.append(0x3a)
        if pretty { buffer.append(0x20) }
    }

    public mutating func field(_ k: String, _ v: String?) {
        key(k)
        if let v { JSONWriter.appendString(v, to: &buffer) } else { raw("null") }
    }

    public mutating func field(_ k: String, _ v: Int) { key(k); integer(Int64(v)) }
    public mutating func field(_ k: String, _ v: Int64) { key(k); integer(v) }
    public mutating func field(_ k: String, _ v: UInt64) {
        key(k)
        if v <= UInt64(Int64.max) { integer(Int64(v)) } else { raw(String(v)) }
    }
    public mutating func field(_ k: String, _ v: Bool) { key(k); raw(v ? "true" : "false") }
    public mutating func field(_ k: String, _ v: Double) {
        key(k)
        raw(v.isFinite ? String(v) : "null")
    }
    public mutating func fieldNull(_ k: String) { key(k); raw("null") }

    private mutating func raw(_ s: String) { buffer.append(contentsOf: s.utf8) }

    /// Decimal digits without building a `String`.
    private mutating func integer(_ v: Int64) {
        if v == 0 { buffer.append(0x30); return }
        var m = v.magnitude
        if v < 0 { buffer.append(0x2d) }
        let start = buffer.count
        while m > 0 {
            buffer.append(0x30 + UInt8(m % 10))
            m /= 10
        }
        buffer[start...].reverse()
    }

    public mutating func value(_ v: String) {
        separator()
        JSONWriter.appendString(v, to: &buffer)
    }

    /// JSON string escaping (RFC 8259): quotes, backslash and every control character.
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(0x22)
        // Fast path, on the contiguous UTF-8 of a native string (iterating `String.UTF8View` costs
        // ~10 instructions a byte): nothing to escape, the common case, goes in one piece.
        var s = s
        let plain = s.withUTF8 { u -> Bool in
            for b in u where b < 0x20 || b == 0x22 || b == 0x5c || b == 0x7f || b >= 0xc2 { return false }
            out.append(contentsOf: u)
            return true
        }
        if !plain {
            for u in s.unicodeScalars {
                switch u {
                case "\"": out.append(contentsOf: "\\\"".utf8)
                case "\\": out.append(contentsOf: "\\\\".utf8)
                case "\n": out.append(contentsOf: "\\n".utf8)
                case "\r": out.append(contentsOf: "\\r".utf8)
                case "\t": out.append(contentsOf: "\\t".utf8)
                default:
                    if u.value < 0x20 || u.value == 0x7f || (u.value >= 0x80 && u.value < 0xa0) || u.value == 0x2028 || u.value == 0x2029 {
                        let hex = String(u.value, radix: 16)
                        out.append(contentsOf: ("\\u" + String(repeating: "0", count: 4 - hex.count) + hex).utf8)
                    } else {
                        out.append(contentsOf: String(u).utf8)
                    }
                }
            }
        }
        out.append(0x22)
    }

    /// The same, onto a String (the facts writer builds its lines as Strings).
    public static func appendString(_ s: String, to out: inout String) {
        var bytes: [UInt8] = []
        appendString(s, to: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }
}
