import S2Model
import S2Report
import Testing

/// The JSON writer and the timestamp formatter write bytes directly; their text must be what the
/// `String` definitions give.
@Suite struct WriterFastPathTests {
    @Test func integersAreWrittenAsSwiftPrintsThem() {
        let ints: [Int] = [0, 1, -1, 9, 10, -10, 1_234_567, Int.max, Int.min]
        let u64: [UInt64] = [0, 7, UInt64(Int64.max), UInt64(Int64.max) + 1, .max]
        var w = JSONWriter(pretty: false)
        w.beginObject()
        for (i, v) in ints.enumerated() { w.field("i\(i)", v) }
        for (i, v) in u64.enumerated() { w.field("u\(i)", v) }
        w.field("x", Int64.min)
        w.endObject()
        let expected = "{" + (ints.enumerated().map { "\"i\($0.offset)\":\($0.element)" } + u64.enumerated().map { "\"u\($0.offset)\":\($0.element)" }
            + ["\"x\":\(Int64.min)"]).joined(separator: ",") + "}"
        #expect(w.output == expected)
    }

    @Test func stringsAreEscapedAsBefore() {
        let values = ["plain", "quote \" and \\ backslash", "tab\tnew\nline\r", "\u{1}\u{1f}\u{7f}", "ünïcödé", "\u{85}\u{2028}\u{2029}", ""]
        var w = JSONWriter(pretty: true)
        w.beginArray()
        for v in values { w.value(v) }
        w.endArray()
        var expected = "["
        for (i, v) in values.enumerated() {
            var s = ""
            JSONWriter.appendString(v, to: &s)
            expected += (i == 0 ? "" : ",") + "\n  " + s
        }
        expected += "\n]"
        #expect(w.output == expected)
        #expect(w.output.contains("\\u0001") && w.output.contains("\\u2028") && w.output.contains("\"ünïcödé\""))
    }

    /// What the escaping wrote when it went by Unicode scalar: the byte-wise writer must give the
    /// same text for any string.
    static func scalarWise(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7f || (u.value >= 0x80 && u.value < 0xa0) || u.value == 0x2028 || u.value == 0x2029 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    @Test(arguments: [1, 2, 3, 4])
    func escapingMatchesTheScalarDefinition(seed: UInt64) {
        // Scalars next to and inside every escaped range, in every UTF-8 length.
        let pool: [UInt32] = [0, 1, 0x09, 0x0a, 0x0d, 0x1f, 0x20, 0x22, 0x27, 0x3c, 0x5c, 0x61, 0x7e, 0x7f, 0x80, 0x85, 0x9f,
                              0xa0, 0xc2, 0xe9, 0x7ff, 0x800, 0x2027, 0x2028, 0x2029, 0x202a, 0x20ac, 0xfeff, 0xffff,
                              0x10000, 0x1f600, 0x10ffff]
        var state = seed &* 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        for _ in 0..<2_000 {
            var s = String.UnicodeScalarView()
            for _ in 0..<Int(next() % 12) { s.append(Unicode.Scalar(pool[Int(next() % UInt64(pool.count))])!) }
            let string = String(s)
            var bytes: [UInt8] = []
            JSONWriter.appendString(string, to: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == Self.scalarWise(string), "\(Array(string.unicodeScalars.map(\.value)))")
        }
    }

    @Test func streamingHandsOverTheSameText() {
        var chunks: [String] = []
        var s = JSONWriter(pretty: false, streamingTo: { chunks.append($0) })
        var whole = JSONWriter(pretty: false)
        for w in [0, 1] {
            for i in 0..<20_000 {
                if w == 0 { s.beginObject(); s.field("n", i); s.field("t", "é\(i)"); s.endObject() } else { whole.beginObject(); whole.field("n", i); whole.field("t", "é\(i)"); whole.endObject() }
            }
        }
        s.finish()
        #expect(chunks.count > 1)
        #expect(chunks.joined() == whole.output)
    }

    @Test(arguments: [(0, 0), (1, 999_999_999), (951_782_400, 5_000), (1_780_000_000, 123_456_789), (253_402_300_799, 999_999_999), (-1, 500_000_000)])
    func timestampsFormatAsRFC3339(_ seconds: Int64, _ nanoseconds: Int32) {
        let t = Timestamp(seconds: seconds, nanoseconds: nanoseconds)
        let expected: [Int64: String] = [0: "1970-01-01T00:00:00.000000Z", 1: "1970-01-01T00:00:01.999999Z",
                                         951_782_400: "2000-02-29T00:00:00.000005Z", 1_780_000_000: "2026-05-28T20:26:40.123456Z",
                                         253_402_300_799: "9999-12-31T23:59:59.999999Z", -1: "1969-12-31T23:59:59.500000Z"]
        #expect(t.rfc3339 == expected[seconds])
        #expect(t.rfc3339Nanoseconds.count == 30 && t.rfc3339Nanoseconds.hasPrefix(String(expected[seconds]!.prefix(26))))
    }
}
