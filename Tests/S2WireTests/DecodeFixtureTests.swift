import Foundation
@testable import S2Capture
import S2Model
import S2Wire
import Testing

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

struct DecodedSegment: Equatable, CustomStringConvertible {
    var frame: Int, time: String, src: String, sport: Int, dst: String, dport: Int
    var seq: UInt32, ack: UInt32, flags: Int, payloadHex: String, payloadLength: Int, snapTruncated: Bool
    var description: String { "#\(frame) \(src):\(sport)->\(dst):\(dport) seq \(seq) flags \(flags) len \(payloadLength)" }
}

func hex(_ b: UnsafeRawBufferPointer) -> String { b.map { String(format: "%02x", $0) }.joined() }

/// The fixture name of a skip (`skipped[].kind` in the expected JSON).
func skipKind(_ skip: DecodeSkip) -> String {
    switch skip {
    case .notTCP: "not_tcp"
    case .fragmentHeld: "fragment_held"
    case .truncated: "truncated"
    case .malformed: "malformed"
    case .unsupportedLinkType: "unsupported_link_type"
    }
}

/// Decodes every frame of a capture; returns TCP segments and the frames that gave none.
func decodeAll(_ path: String) throws -> (segments: [DecodedSegment], other: [Int], skips: [Int: String], frames: Int, end: ReadEnd, reader: PcapFileReader) {
    let reader = try PcapFileReader(path: path, inputIndex: 0)
    let decoder = FrameDecoder()
    var segs: [DecodedSegment] = []
    var other: [Int] = []
    var skips: [Int: String] = [:]
    let end = reader.read { p in
        switch decoder.decode(p.bytes, linkType: p.linkType, frame: p.frame) {
        case .success(let s):
            segs.append(DecodedSegment(frame: p.frame.number, time: "", src: s.source.address.description, sport: Int(s.source.port),
                                       dst: s.destination.address.description, dport: Int(s.destination.port),
                                       seq: s.sequence, ack: s.acknowledgment, flags: Int(s.flags.rawValue),
                                       payloadHex: hex(s.payload), payloadLength: s.payloadLength, snapTruncated: s.isSnapTruncated))
            segs[segs.count - 1].time = p.frame.time.rfc3339Nanoseconds
        case .failure(let skip):
            other.append(p.frame.number)
            skips[p.frame.number] = skipKind(skip)
        }
        return true
    }
    return (segs, other, skips, reader.framesRead, end, reader)
}

struct DecodeFixtureTests {
    static let fixtures: [String] = {
        let dir = repoRoot.appendingPathComponent("fixtures/decode")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".expected.json") }.map { String($0.dropLast(".expected.json".count)) }.sorted()
    }()

    @Test func thereAreFixturesForEveryLinkType() {
        let all = Set(Self.fixtures)
        for name in ["ethernet", "linux-sll", "linux-sll2", "null", "loop", "raw", "vlan", "qinq", "ipv4-options",
                     "ipv6-ext-headers", "ipv4-fragments", "ipv6-fragments", "snaplen-cut", "nanosecond", "pcapng-basic",
                     "ipv6-atomic-fragment-dstopts-overrun", "ipv6-fragments-dstopts"] {
            #expect(all.contains(name), "missing decode fixture \(name)")
        }
    }

    @Test(arguments: fixtures)
    func decodesFixtureToExpectedSegments(_ name: String) throws {
        let dir = repoRoot.appendingPathComponent("fixtures/decode")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("\(name).expected.json"))) as! [String: Any]
        let file = dir.appendingPathComponent(json["file"] as! String).path
        let got = try decodeAll(file)
        #expect(got.reader.format.rawValue == json["format"] as! String)
        #expect(linkTypeName(got.reader.linkType) == json["link_type"] as! String)
        #expect(got.frames == json["frames"] as! Int)
        let truncated: Bool
        if case .truncated = got.end { truncated = true } else { truncated = false }
        #expect(truncated == json["truncated_file"] as! Bool)
        let nano = (json["precision"] as! String) == "nano"
        let expected = (json["segments"] as! [[String: Any]]).map { s in
            DecodedSegment(frame: s["frame"] as! Int, time: s["time"] as! String, src: s["src"] as! String, sport: s["sport"] as! Int,
                           dst: s["dst"] as! String, dport: s["dport"] as! Int, seq: UInt32(s["seq"] as! Int), ack: UInt32(s["ack"] as! Int),
                           flags: s["flags"] as! Int, payloadHex: s["payload_hex"] as! String, payloadLength: s["payload_length"] as! Int,
                           snapTruncated: s["snap_truncated"] as! Bool)
        }
        var actual = got.segments
        for i in actual.indices where !nano { actual[i].time = String(actual[i].time.dropLast(4)) + "Z" }
        #expect(actual.count == expected.count, "\(name): \(actual.count) segments, expected \(expected.count)")
        for (a, e) in zip(actual, expected) { #expect(a == e, "\(name)") }
        #expect(got.other == json["non_tcp_frames"] as! [Int], "\(name): frames without a segment")
        let skipped = (json["skipped"] as! [[String: Any]]).map { ($0["frame"] as! Int, $0["kind"] as! String) }
        #expect(skipped.map(\.0) == got.other, "\(name): every frame without a segment has its reason")
        for (frame, kind) in skipped { #expect(got.skips[frame] == kind, "\(name): frame \(frame)") }
    }

    /// tshark is a cross-check here, not the oracle: where it decodes a TCP segment, ours must agree.
    @Test(arguments: fixtures)
    func agreesWithTshark(_ name: String) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tshark") else { return }
        let dir = repoRoot.appendingPathComponent("fixtures/decode")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("\(name).expected.json"))) as! [String: Any]
        let file = dir.appendingPathComponent(json["file"] as! String).path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/tshark")
        p.arguments = ["-r", file, "-n", "-o", "tcp.analyze_sequence_numbers:FALSE", "-Y", "tcp && !icmp", "-T", "fields",
                       "-e", "frame.number", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.seq_raw"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let ours = try decodeAll(file).segments
        var tsharkFrames = 0
        for line in out.split(separator: "\n") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard f.count == 4, let n = Int(f[0]) else { continue }
            tsharkFrames += 1
            // pcapng custom blocks shift tshark's frame numbers: compare by content, not number.
            let match = ours.contains { $0.sport == Int(f[1]) && $0.dport == Int(f[2]) && String($0.seq) == f[3] }
            #expect(match, "\(name): tshark frame \(n) \(f[1])->\(f[2]) seq \(f[3]) not decoded by s2scope")
        }
        #expect(tsharkFrames <= ours.count + 1)
    }
}

struct AddressTests {
    @Test func ipv6TextFollowsRFC5952() {
        #expect(IPAddress("2001:db8::1")!.description == "2001:db8::1")
        #expect(IPAddress("2001:db8:0:0:1:0:0:b")!.description == "2001:db8::1:0:0:b")
        #expect(IPAddress("::1")!.description == "::1")
        #expect(IPAddress("2001:db8:1:2:3:4:5:6")!.description == "2001:db8:1:2:3:4:5:6")
        #expect(IPAddress("192.0.2.1")!.description == "192.0.2.1")
        #expect(IPAddress("1.2.3") == nil)
        #expect(Endpoint(address: IPAddress("::1")!, port: 5269).description == "[::1]:5269")
    }

    @Test func timestampsAreRFC3339() {
        #expect(Timestamp(seconds: 1_709_294_400, nanoseconds: 1000).rfc3339 == "2024-03-01T12:00:00.000001Z")
        #expect(Timestamp(seconds: 0, nanoseconds: 0).rfc3339 == "1970-01-01T00:00:00.000000Z")
        #expect(Timestamp(seconds: 951_782_400, nanoseconds: 5).rfc3339Nanoseconds == "2000-02-29T00:00:00.000000005Z")
    }
}

struct CaptureErrorTests {
    func tempFile(_ bytes: [UInt8]) -> String {
        let path = NSTemporaryDirectory() + "s2scope-\(UUID().uuidString)"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)), "\(path) could not be written")
        return path
    }

    @Test func missingEmptyAndTextFilesAreRefusedWithAReason() {
        #expect(throws: CaptureError.self) { try PcapFileReader(path: "/nonexistent/x.pcap", inputIndex: 0) }
        let empty = tempFile([])
        #expect { try PcapFileReader(path: empty, inputIndex: 0) } throws: { ($0 as! CaptureError).message.contains("empty file") }
        let text = tempFile(Array("hello, this is not a capture\n".utf8))
        #expect { try PcapFileReader(path: text, inputIndex: 0) } throws: { ($0 as! CaptureError).message.contains("not a readable pcap") }
    }

    @Test func badFilterIsRefused() throws {
        let f = repoRoot.appendingPathComponent("fixtures/decode/ethernet.pcap").path
        #expect { try PcapFileReader(path: f, inputIndex: 0, filter: "tcp port banana") } throws: { ($0 as! CaptureError).message.contains("invalid --filter") }
    }

    @Test func filteredFramesKeepWiresharkNumbers() throws {
        let f = repoRoot.appendingPathComponent("fixtures/decode/mixed-non-tcp.pcap").path
        let r = try PcapFileReader(path: f, inputIndex: 0, filter: "udp")
        var numbers: [Int] = []
        _ = r.read { numbers.append($0.frame.number); return true }
        let all = try decodeAll(f)
        #expect(!numbers.isEmpty)
        #expect(numbers.allSatisfy { !all.segments.map(\.frame).contains($0) })
        #expect(r.framesRead == all.frames)
    }
}

/// The kernel filter `s2scope live` uses by default must pass every frame that can carry s2s
/// traffic on every link type: TCP on the port (also behind IPv6 extension headers), untagged,
/// behind one VLAN tag or two, and every IP fragment (later fragments carry no port). Checked with
/// libpcap's own BPF compiler and interpreter on every decode fixture: the segments decoded from
/// the filtered frames are all the fixture's segments, and no held fragment is filtered out.
struct LiveFilterTests {
    @Test(arguments: DecodeFixtureTests.fixtures.filter { !$0.hasPrefix("pcapng") && $0 != "truncated-mid-record" })
    func defaultFilterPassesEverySegmentAndFragment(_ name: String) throws {
        let path = repoRoot.appendingPathComponent("fixtures/decode/\(name).pcap").path
        let all = try decodeAll(path)
        let filter = LiveCapture.filter(LiveCapture.defaultFilter(ports: [5269]), forLinkType: all.reader.linkType)
        #expect(filter.contains("vlan") == (all.reader.linkType == 1), "VLAN clauses exactly on Ethernet")
        let reader = try PcapFileReader(path: path, inputIndex: 0, filter: filter)
        let decoder = FrameDecoder()
        var passed: [Int] = [], segments: [Int] = []
        _ = reader.read { p in
            passed.append(p.frame.number)
            if case .success = decoder.decode(p.bytes, linkType: p.linkType, frame: p.frame) { segments.append(p.frame.number) }
            return true
        }
        var expected = all.segments.map(\.frame)
        // null.pcap frame 4 is IPv6 under AF_INET6 = 10, Linux's value: libpcap's BPF knows only the
        // BSD values (24, 28, 30), and only BSD loopbacks write DLT_NULL live.
        if name == "null" { expected.removeAll { $0 == 4 } }
        #expect(segments == expected, "\(name): segments decoded behind the filter")
        let fragments = all.skips.filter { $0.value == "fragment_held" }.map(\.key)
        #expect(Set(fragments).isSubset(of: passed), "\(name): fragments the filter dropped")
        if name == "mixed-non-tcp" {
            #expect(passed == all.segments.map(\.frame), "ARP, DNS, ICMP and ICMPv6 stay out")
        }
    }

    @Test func aUserFilterIsNeverRewritten() {
        #expect(LiveCapture.filter("vlan and tcp", forLinkType: 113) == "vlan and tcp")
        #expect(LiveCapture.filter("tcp port 5269 or (vlan and (udp))", forLinkType: 113) == "tcp port 5269 or (vlan and (udp))")
        let d = LiveCapture.defaultFilter(ports: [5269, 5270])
        #expect(LiveCapture.filter(d, forLinkType: 1) == d)
        #expect(LiveCapture.filter(d, forLinkType: 113) == "(tcp port 5269 or tcp port 5270) or (ip[6:2] & 0x3fff != 0) or (ip6 and ip6[6] == 44) or (ip6 and (ip6[6] == 0 or ip6[6] == 43 or ip6[6] == 51 or ip6[6] == 60))")
    }
}
