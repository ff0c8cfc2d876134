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
