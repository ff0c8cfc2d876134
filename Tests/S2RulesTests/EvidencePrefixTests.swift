@testable import S2Rules
import Testing

/// A finding keeps the first 600 characters of its evidence; the byte-wise shortcut must cut where
/// `String.prefix(600)` cuts.
struct EvidencePrefixTests {
    static let cases: [String] = {
        let a599 = String(repeating: "a", count: 599)
        return [
            "", "<message/>",
            String(repeating: "x", count: 600),
            String(repeating: "x", count: 601),
            String(repeating: "<a b='c'/>", count: 200),
            a599 + "\r\n" + "tail",                     // CR LF is one character, straddling the cut
            a599 + "b\r\nmore",
            a599 + "e\u{301}" + "more",                  // a combining accent right after the cut
            String(repeating: "é", count: 700),
            String(repeating: "a", count: 590) + "👩‍👩‍👧" + String(repeating: "z", count: 50),
            String(repeating: "\u{1F1EB}\u{1F1F7}", count: 400),  // regional indicator pairs
            String(repeating: "a", count: 600) + "\u{301}",
        ]
    }()

    @Test(arguments: cases)
    func cutsWherePrefixCuts(_ evidence: String) {
        let got = RuleContext.evidencePrefix(evidence)
        #expect(got == String(evidence.prefix(600)))
        #expect(got.utf8.elementsEqual(String(evidence.prefix(600)).utf8))
    }
}
