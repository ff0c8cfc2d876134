import S2TestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import S2Synth
import Testing

/// Hostile inputs against the real `s2scope` binary (docs/LIMITS.md lists the bounds).
///
/// Every test asserts the exit status of the contract (REPORT.md: 0/1 analysed, 2 not
/// analysable), a clear message or the expected finding/anomaly, the child's peak RSS under a
/// documented bound, and — when a capture was analysable — that the valid dialback exchange
/// placed before the damage is still in the report.
struct HostileInputTests {
    /// Peak RSS bounds (MiB) of the debug binary, measured with GNU time; docs/LIMITS.md explains them.
    enum Bound {
        static let small = 48.0          // refused files, captures of a few frames (measured ~23–26)
        static let bomb = 64.0           // billion laughs, 100,000-deep nesting, odd bytes (~26)
        static let hugeStanza = 96.0     // one 20 MB stanza: parsed, 1 MiB kept at most (~26)
        static let synFlood = 160.0      // 200,000 SYN-only flows, 100,000 tracked at once (~116)
        static let millionFlows = 96.0   // 1,000,000 SYN-only flows with --max-connections 50000
    }

    // MARK: - Helpers

    func analyse(_ path: String, _ extra: [String] = [], format: String = "json") throws -> MeasuredRun {
        try runMeasured(["analyze", "--quiet", "--format", format] + extra + [path])
    }

    /// Exit status 0 or 1 (analysed), well-formed JSON; returns the document.
    func analysed(_ r: MeasuredRun, _ what: String) throws -> [String: Any] {
        #expect(r.status == 0 || r.status == 1, "\(what): exit \(r.status), stderr: \(r.stderr.prefix(500))")
        let json = try #require(r.json, "\(what): stdout is not one JSON document: \(r.stdout.prefix(300))")
        return json
    }

    /// Under `swift test --sanitize=…` the child is sanitized too: shadow memory and ASan's
    /// 256 MiB quarantine make RSS meaningless, so the bound is only logged.
    static let sanitized = ["__asan_init", "__tsan_init"].contains { (name: String) in dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) != nil }

    func expectBelow(_ r: MeasuredRun, _ mib: Double, _ what: String) {
        print("[hostile] \(what): exit \(r.status), peak RSS \(String(format: "%.1f", r.maxRSSMiB)) MiB (bound \(Int(mib))\(Self.sanitized ? ", not checked under a sanitizer" : "")), \(String(format: "%.2f", r.seconds)) s")
        guard !Self.sanitized else { return }
        #expect(r.maxRSSMiB < mib, "\(what): peak RSS \(r.maxRSSMiB) MiB ≥ bound \(mib) MiB")
    }

    /// The dialback exchange that precedes the damage is reported, and valid.
    func expectValidDialback(_ json: [String: Any], _ what: String) {
        let dialbacks = json["dialbacks"] as? [[String: Any]] ?? []
        #expect(dialbacks.contains {
            $0["originating"] as? String == "a.example" && $0["receiving"] as? String == "b.example"
                && $0["stream_id"] as? String == "s1" && $0["outcome"] as? String == "valid"
                && $0["verify_type"] as? String == "valid"
        }, "\(what): the valid dialback before the damage is missing: \(dialbacks)")
    }

    func anomalies(_ json: [String: Any], kind: String) -> [[String: Any]] {
        (json["anomalies"] as? [[String: Any]] ?? []).filter { $0["kind"] as? String == kind }
    }

    func violations(_ json: [String: Any], rule: String) -> [[String: Any]] {
        (json["violations"] as? [[String: Any]] ?? []).filter { $0["rule"] as? String == rule }
    }

    /// Exit 2, nothing on stdout, one line on stderr that contains `needle`.
    func expectRefused(_ r: MeasuredRun, _ needle: String, _ what: String) {
        #expect(r.status == 2, "\(what): exit \(r.status)")
        #expect(r.stdout.isEmpty, "\(what): stdout not empty")
        #expect(r.stderr.contains(needle), "\(what): stderr '\(r.stderr)' lacks '\(needle)'")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(what): stderr is not one line: \(r.stderr)")
        expectBelow(r, Bound.small, what)
    }

    // MARK: - Files that are not (whole) captures

    @Test func emptyFileIsRefused() throws {
        expectRefused(try analyse(temporaryFile([])), "empty file", "empty file")
    }

    @Test func textFileIsRefused() throws {
        let html = "<!DOCTYPE html>\n<html><body>\u{1b}[31mnot a capture\u{1b}[0m</body></html>\n"
        expectRefused(try analyse(temporaryFile(Array(html.utf8), suffix: ".txt")), "not a readable pcap", "text file")
    }

    @Test func garbageHeaderIsRefused() throws {
        // A valid capture whose first bytes are overwritten: no reader can know where records start.
        var bytes = try HostileCapture().bytes
        for i in 0..<8 { bytes[i] = UInt8(0xde &+ UInt8(i) &* 37) }
        expectRefused(try analyse(temporaryFile(bytes)), "not a readable pcap", "garbage header")
        // A pcap magic followed by a header cut short, and 64 KiB of noise.
        var noise: [UInt8] = [0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00]
        var x: UInt32 = 2_463_534_242
        for _ in 0..<65_536 { x ^= x << 13; x ^= x >> 17; x ^= x << 5; noise.append(UInt8(truncatingIfNeeded: x)) }
        expectRefused(try analyse(temporaryFile(Array(noise.prefix(6)))), "not a readable pcap", "cut header")
        expectRefused(try analyse(temporaryFile(Array(noise.dropFirst(6)))), "not a readable pcap", "noise")
    }

    @Test func captureTruncatedMidRecordIsAnalysedUpToTheCut() throws {
        var cap = try HostileCapture()
        cap.connection(clientData: HostileCapture.header + Array("<message><body>cut here</body></message>".utf8))
        let whole = cap.bytes
        // Cut inside the last record's data (its 16-byte header is complete), and inside its header.
        let last = try #require(pcapRecordOffsets(whole).last)
        for cut in [last + 16 + 40, last + 9] {
            let r = try analyse(temporaryFile(Array(whole.prefix(cut))))
            let json = try analysed(r, "truncated at \(cut)")
            let inputs = json["inputs"] as? [[String: Any]] ?? []
            #expect(inputs.first?["truncated"] as? Bool == true, "truncated flag: \(inputs)")
            #expect(!anomalies(json, kind: "truncated-capture").isEmpty)
            expectValidDialback(json, "truncated capture")
            expectBelow(r, Bound.small, "truncated capture")
        }
    }

    @Test func pcapngWithUnknownBlockTypesIsRead() throws {
        // The fixture: a Custom Block among the packets.
        let fixture = repoRoot.appendingPathComponent("fixtures/decode/pcapng-custom-block.pcapng").path
        let f = try analysed(try analyse(fixture), "fixture")
        let inputs = f["inputs"] as? [[String: Any]] ?? []
        #expect(inputs.first?["format"] as? String == "pcapng" && inputs.first?["packets"] as? Int == 5)
        let conns = f["connections"] as? [[String: Any]] ?? []
        #expect(conns.count == 1 && (conns.first?["streams"] as? [Any])?.count == 2, "\(conns)")
        // Generated: reserved, local-use and custom block types before, between and after the packets.
        let cap = try HostileCapture()
        let r = try analyse(temporaryFile(pcapng(fromPcap: cap.bytes), suffix: ".pcapng"))
        let json = try analysed(r, "pcapng with unknown blocks")
        let gi = json["inputs"] as? [[String: Any]] ?? []
        #expect(gi.first?["format"] as? String == "pcapng")
        #expect(gi.first?["packets"] as? Int == cap.frames, "every packet read: \(gi)")
        #expect(gi.first?["truncated"] as? Bool == false)
        expectValidDialback(json, "pcapng with unknown blocks")
        expectBelow(r, Bound.small, "pcapng with unknown blocks")
    }

    // MARK: - Hostile XML

    @Test func xmlBombIsRestrictedXMLAndDoesNotExpand() throws {
        var bomb = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
        var prev = "lol"
        for i in 1...9 {
            bomb += "<!ENTITY lol\(i) '" + String(repeating: "&\(prev);", count: 10) + "'>"
            prev = "lol\(i)"
        }
        bomb += "]>"
        let t = HostileCapture.validDialback + """

            @3 10.0.0.9 -> 10.0.0.2
            3C> \(bomb)$HDR to='b.example' from='evil.example'><message to='v@b.example'>&\(prev);</message>
            3S> $HDR from='b.example' to='evil.example' id='s3'>
            3C> <message to='v@b.example' id='after'><body>&\(prev);&\(prev);</body></message>
            """
        let r = try analyse(HostileCapture(transcript: t).write())
        let json = try analysed(r, "xml bomb")
        let xml1 = violations(json, rule: "XML-1")
        #expect(!xml1.isEmpty, "XML-1 (restricted XML: DTD) must fire")
        #expect(xml1.contains { ($0["message"] as? String ?? "").contains("DOCTYPE") || ($0["evidence"] as? String ?? "").contains("DOCTYPE") },
                "the finding names the DOCTYPE: \(xml1)")
        #expect(!r.stdout.contains(String(repeating: "lol", count: 1000)), "entities must not be expanded into the report")
        expectValidDialback(json, "xml bomb")
        expectBelow(r, Bound.bomb, "xml bomb")
        #expect(r.seconds < 30)
    }

    @Test func hundredThousandDeepNestingIsCut() throws {
        var cap = try HostileCapture()
        let depth = 100_000
        var data = HostileCapture.header + Array("<message to='v@b.example'>".utf8)
        data += Array(String(repeating: "<a>", count: depth).utf8) + Array(String(repeating: "</a>", count: depth).utf8)
        data += Array("</message><message to='v@b.example' id='after-nesting'><body>still here</body></message>".utf8)
        cap.connection(clientData: data)
        let path = cap.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try analyse(path)
        let json = try analysed(r, "deep nesting")
        #expect(anomalies(json, kind: "limit-reached").contains { ($0["message"] as? String ?? "").contains("nesting") },
                "a limit-reached anomaly names the nesting cap: \(json["anomalies"] ?? [])")
        expectValidDialback(json, "deep nesting")
        expectBelow(r, Bound.bomb, "100,000-deep nesting")
        #expect(r.seconds < 60)
    }

    @Test func twentyMegabyteStanzaIsParsedButNotKept() throws {
        var cap = try HostileCapture()
        let size = 20 << 20
        var data = HostileCapture.header + Array("<message to='v@b.example' id='huge'><body>".utf8)
        data.reserveCapacity(data.count + size + 64)
        let line = Array("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n".utf8)
        while data.count < size { data += line }
        data += Array("</body></message><message to='v@b.example' id='after-huge'><body>next</body></message>".utf8)
        cap.connection(clientData: data)
        let path = cap.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try analyse(path)
        let json = try analysed(r, "20 MB stanza")
        #expect(anomalies(json, kind: "limit-reached").contains { ($0["message"] as? String ?? "").contains("element cap") },
                "a limit-reached anomaly names the element cap: \(json["anomalies"] ?? [])")
        #expect(r.stdout.utf8.count < 2 << 20, "the report does not carry the stanza: \(r.stdout.utf8.count) bytes")
        expectValidDialback(json, "20 MB stanza")
        expectBelow(r, Bound.hugeStanza, "20 MB stanza")
    }

    @Test func nonUTF8BytesAreReportedAndTheReportStaysUTF8() throws {
        let t = HostileCapture.validDialback + """

            C> <message from='u@a.example' to='v@b.example' id='m2'><body>caf\\xe9 \\xff\\xfe \\xc0\\x80 \\xed\\xa0\\x80</body></message>
            @3 10.0.0.9 -> 10.0.0.2
            3C> $HDR to='b.\\xff.example' from='\\xc3\\x28evil.example'>
            """
        let path = try HostileCapture(transcript: t).write()
        let r = try analyse(path)
        #expect(String(data: r.stdoutData, encoding: .utf8) != nil, "the JSON report is valid UTF-8")
        let json = try analysed(r, "non-UTF-8")
        #expect(!violations(json, rule: "XML-5").isEmpty, "XML-5 (stream not in UTF-8) must fire")
        expectValidDialback(json, "non-UTF-8")
        expectBelow(r, Bound.bomb, "non-UTF-8")
        let text = try analyse(path, ["--verbose"], format: "text")
        #expect(text.status == r.status)
        #expect(String(data: text.stdoutData, encoding: .utf8) != nil, "the text report is valid UTF-8")
    }

    @Test func htmlAndANSIEscapesNeverReachTheTerminal() throws {
        let esc = "\\x1b"
        let t = HostileCapture.validDialback + """

            C> <message from='u@a.example' to='v@b.example' id='m3'><body>\(esc)[2J\(esc)]0;owned\\x07<script>alert(1)</script></body></message>
            @3 10.0.0.9 -> 10.0.0.2
            3C> $HDR to='b.example' from='\(esc)[31mevil.example<img src=x onerror=alert(1)>'>
            3S> $HDR from='b.example' to='x' id='<b>s3</b>'>
            3C> <db:result from='\(esc)[1;31mevil.example' to='b.example'>\(esc)[0m&lt;script&gt;</db:result>
            @4 10.0.0.8 -> 10.0.0.2
            4C> $HDR to='b.example' from='evil.example'>
            4S> $HDR from='b.example' to='evil.example' id='s4'>
            4C> <message from='u@evil.example' to='v@b.example' id='&#x9b;31mRED&#x9b;0m \\xc2\\x9b2J &#x202e;gpj.exe &#13;forged &#x85;'><body>&#x9b;31mRED&#x9b;0m \\xc2\\x9b2J &#x202e;gpj.exe &#13;forged line &#x85;<script>alert(1)</script></body></message>
            """
        let path = try HostileCapture(transcript: t).write()
        for color in ["--no-color", "--color"] {
            let r = try analyse(path, ["--verbose", color], format: "text")
            #expect(r.status == 0 || r.status == 1, "exit \(r.status): \(r.stderr)")
            // With --color, S2Scope's own colour codes are ESC [ <digits;> m; nothing else may carry ESC.
            let own = color == "--color" ? #/\x1b\[[0-9;]*m/# : #/(?!)/#
            let wire = r.stdout.replacing(own, with: "")
            #expect(!wire.utf8.contains(0x1b), "\(color): a raw ESC from the wire reached the text report")
            #expect(!wire.utf8.contains(0x07), "\(color): a raw BEL reached the text report")
            // Valid XML can still carry terminal controls: C1 CSI (U+009B), NEL (U+0085), bidi
            // overrides (U+202E) and CR through character references. They are shown escaped.
            for (scalar, name) in [("\u{9b}", "CSI"), ("\u{85}", "NEL"), ("\u{202e}", "RLO"), ("\r", "CR")] {
                #expect(!r.stdout.unicodeScalars.contains(scalar.unicodeScalars.first!), "\(color): a raw \(name) reached the text report")
            }
            #expect(r.stdout.contains("\\x9b") && r.stdout.contains("\\u{202e}"), "\(color): C1 and bidi controls are shown escaped")
            #expect(r.stdout.contains("Dialback exchanges") || r.stdout.contains("D1"), "the report is there")
            expectBelow(r, Bound.small, "ANSI/HTML text \(color)")
        }
        let r = try analyse(path)
        #expect(!r.stdout.utf8.contains(0x1b), "JSON escapes control characters")
        let json = try analysed(r, "ANSI/HTML json")
        expectValidDialback(json, "ANSI/HTML")
        #expect(!violations(json, rule: "XML-3").isEmpty, "a raw ESC is not XML: XML-3 fires")
    }

    // MARK: - Flood

    @Test func twoHundredThousandSYNOnlyFlowsStayUnderTheConnectionCap() throws {
        var cap = try HostileCapture()
        let server = PacketBuilder.addressBytes("10.0.0.2")
        for i in 0..<200_000 {
            let src: [UInt8] = [172, 16 + UInt8(i >> 16), UInt8(i >> 8 & 0xff), UInt8(i & 0xff)]
            cap.add(PacketBuilder.tcpFrame(src: src, dst: server, sport: UInt16(1024 + i % 60_000), dport: 5269,
                                           seq: UInt32(i) &* 2_654_435_761, ack: 0, flags: 0x02, payload: []))
        }
        let path = cap.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try analyse(path)
        let json = try analysed(r, "SYN flood")
        let summary = json["summary"] as? [String: Any] ?? [:]
        #expect(summary["tcp_connections"] as? Int == 200_002, "every flow counted: \(summary["tcp_connections"] ?? "nil")")
        #expect(anomalies(json, kind: "limit-reached").contains { ($0["message"] as? String ?? "").contains("connection table full") },
                "one limit-reached anomaly for the connection table")
        #expect(anomalies(json, kind: "limit-reached").count == 1)
        #expect(summary["tcp_connections_without_xmpp"] as? Int == 200_000, "SYN-only flows are counted, not listed")
        #expect((json["connections"] as? [Any])?.count == 2, "only the dialback's connections are listed")
        expectValidDialback(json, "SYN flood")
        expectBelow(r, Bound.synFlood, "200,000 SYN-only flows")
    }

    /// Issue "TCP reassembly": a flood of 1,000,000 SYN-only flows stays under the documented cap
    /// (here `--max-connections 50000`), measured on the real binary.
    @Test func millionSYNOnlyFlowsStayUnderTheMemoryCap() throws {
        var cap = try HostileCapture()
        let server = PacketBuilder.addressBytes("10.0.0.2")
        for i in 0..<1_000_000 {
            let src: [UInt8] = [172, 16 + UInt8(i >> 16), UInt8(i >> 8 & 0xff), UInt8(i & 0xff)]
            cap.add(PacketBuilder.tcpFrame(src: src, dst: server, sport: UInt16(1024 + i % 60_000), dport: 5269,
                                           seq: UInt32(truncatingIfNeeded: i) &* 2_654_435_761, ack: 0, flags: 0x02, payload: []))
        }
        let path = cap.write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try analyse(path, ["--max-connections", "50000"])
        let json = try analysed(r, "million SYN flood")
        let summary = json["summary"] as? [String: Any] ?? [:]
        #expect(summary["tcp_connections"] as? Int == 1_000_002)
        #expect(summary["tcp_connections_without_xmpp"] as? Int == 1_000_000)
        expectValidDialback(json, "million SYN flood")
        expectBelow(r, Bound.millionFlows, "1,000,000 SYN-only flows")
    }
}
