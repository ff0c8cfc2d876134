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

    /// JSON string escaping (RFC 8259): quotes, backslash and every control character (C0, DEL,
    /// C1), and U+2028/U+2029, which some JavaScript readers take for line ends.
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(0x22)
        // On the contiguous UTF-8 of a native string (iterating `String.UTF8View` costs ~10
        // instructions a byte, and going by Unicode scalar, as this did, ~150 with a String made
        // per scalar): the runs between escapes go in one piece. A Swift string is valid UTF-8, so
        // the escaped scalars are found by their bytes: C1 controls are C2 80…C2 9F, U+2028/2029
        // E2 80 A8/A9; no continuation byte equals a lead byte.
        var s = s
        // Nothing to escape, the common case: one scan, one copy.
        let plain = s.withUTF8 { u -> Bool in
            for b in u where b < 0x20 || b == 0x22 || b == 0x5c || b == 0x7f || b >= 0xc2 { return false }
            out.append(contentsOf: u)
            return true
        }
        if !plain { s.withUTF8 { appendEscaped($0, to: &out) } }
        out.append(0x22)
    }

    /// `u` with its escapes, the runs between them in one piece each.
    private static func appendEscaped(_ u: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        var run = 0
        var i = 0
        while i < u.count {
            let b = u[i]
            var short: UInt8 = 0        // a two-character escape
            var code: UInt32 = 0        // or a \u escape, with the bytes it replaces
            var length = 0
            switch b {
            case 0x22: short = 0x22
            case 0x5c: short = 0x5c
            case 0x0a: short = 0x6e
            case 0x0d: short = 0x72
            case 0x09: short = 0x74
            case 0..<0x20, 0x7f: (code, length) = (UInt32(b), 1)
            case 0xc2 where i + 1 < u.count && u[i + 1] < 0xa0: (code, length) = (UInt32(u[i + 1]), 2)
            case 0xe2 where i + 2 < u.count && u[i + 1] == 0x80 && (u[i + 2] == 0xa8 || u[i + 2] == 0xa9):
                (code, length) = (0x2000 + UInt32(u[i + 2] - 0x80), 3)
            default:
                i += 1
                continue
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: u[run..<i]))
            if short != 0 {
                out.append(0x5c)
                out.append(short)
                i += 1
            } else {
                appendUnicodeEscape(code, to: &out)
                i += length
            }
            run = i
        }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: u[run..<u.count]))
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// `\u` and four lowercase hex digits.
    private static func appendUnicodeEscape(_ v: UInt32, to out: inout [UInt8]) {
        out.append(0x5c)
        out.append(0x75)
        for shift: UInt32 in [12, 8, 4, 0] { out.append(hexDigits[Int((v >> shift) & 0xf)]) }
    }

    /// The same, onto a String (the facts writer builds its lines as Strings).
    public static func appendString(_ s: String, to out: inout String) {
        var bytes: [UInt8] = []
        appendString(s, to: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }
}
