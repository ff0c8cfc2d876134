import S2TestSupport
import Foundation
import S2Capture
import S2Engine
import S2Model
import S2Report
import S2Synth
import S2Wire
import Testing

/// Issue #16: no frame reaches a trap. `FrameGrammar` builds frames layer by layer for every link
/// type — VLAN/QinQ stacks, IPv4 options and fragments, IPv6 extension chains with atomic and real
/// fragments and AH, TCP option soup, non-TCP traffic, trailers, lengths that lie both ways, cuts
/// at every layer — and says what an honest decoder must make of each. Each link type gets
/// `framesPerLinkType` frames (120,000 per run in all, seeded: the same frames on every run):
/// first through `FrameDecoder`, checked frame by frame against the grammar; then written to a
/// pcap and analysed by the whole engine, whose counters must add up to what the decoder said.
struct FrameGrammarTests {
    static let framesPerLinkType = 12_000
    /// Fixed, so a failure reproduces; `S2SCOPE_GRAMMAR_SEED=N` explores other frames.
    static let seed = UInt64(ProcessInfo.processInfo.environment["S2SCOPE_GRAMMAR_SEED"] ?? "") ?? 0x1616

    static func frames(_ linkType: Int32) -> [FrameGrammar.Frame] {
        var g = FrameGrammar(seed: seed &+ UInt64(UInt32(bitPattern: linkType)))
        var out: [FrameGrammar.Frame] = []
        out.reserveCapacity(framesPerLinkType + 8)
        while out.count < framesPerLinkType { out += g.next(linkType: linkType) }
        return out
    }

    /// Frame i's time: 4 ms apart, so fragments that never complete time out (30 s) during a run;
    /// exact in a microsecond pcap, so the engine's decoder sees the same timeouts as the one here.
    static func time(_ i: Int) -> Timestamp { Timestamp(seconds: 1_700_000_000 + Int64(i / 250), nanoseconds: Int32(i % 250) * 4_000_000) }

    static func address(_ b: [UInt8]) -> IPAddress {
        var v: UInt64 = 0, w: UInt64 = 0
        if b.count == 4 {
            for x in b { v = v << 8 | UInt64(x) }
            return IPAddress(ipv4: UInt32(v))
        }
        for x in b.prefix(8) { v = v << 8 | UInt64(x) }
        for x in b.dropFirst(8) { w = w << 8 | UInt64(x) }
        return IPAddress(ipv6High: v, low: w)
    }

    /// What the decoder said about each frame, for the engine's counters.
    struct Tally {
        var segments = 0, segmentsOnServerPort = 0, notTCP = 0, held = 0, truncatedCut = 0, truncatedWhole = 0, malformed = 0
        /// Segments on the server port whose IP length announces more than a frame captured whole holds.
        var lyingSegments = 0
        var expectations: [String: Int] = [:]
    }

    /// Checks one decode against the grammar; returns a problem, or nil.
    static func problem(_ r: Result<TCPSegment, DecodeSkip>, _ f: FrameGrammar.Frame, _ raw: UnsafeRawBufferPointer) -> String? {
        if case .success(let s) = r {
            // Consistency, whatever the frame: the payload is within what was captured (the frame,
            // or a reassembled datagram), never more than announced, truncation flagged.
            guard s.payload.count <= s.payloadLength, s.payloadLength <= 65_535 else {
                return "payload \(s.payload.count) of announced \(s.payloadLength)"
            }
            if s.isSnapTruncated != (s.payload.count < s.payloadLength) { return "isSnapTruncated inconsistent" }
            if let p = s.payload.baseAddress, let base = raw.baseAddress, p >= base, p < base + raw.count,
               p + s.payload.count > base + raw.count {
                return "payload runs past the frame"
            }
        }
        func same(_ s: TCPSegment, _ e: FrameGrammar.Segment) -> String? {
            if s.source == Endpoint(address: address(e.source), port: e.sourcePort),
               s.destination == Endpoint(address: address(e.destination), port: e.destinationPort),
               s.sequence == e.sequence, s.acknowledgment == e.acknowledgment, s.flags.rawValue == e.flags,
               s.window == e.window, s.payloadLength == e.payload.count { return nil }
            let got = "\(s.source) → \(s.destination) seq \(s.sequence) ack \(s.acknowledgment) flags \(s.flags.rawValue) win \(s.window) len \(s.payloadLength)"
            let want = "\(Endpoint(address: address(e.source), port: e.sourcePort)) → \(Endpoint(address: address(e.destination), port: e.destinationPort)) seq \(e.sequence) ack \(e.acknowledgment) flags \(e.flags) win \(e.window) len \(e.payload.count)"
            return got == want ? nil : "got \(got), expected \(want)"
        }
        switch (f.expectation, r) {
        case (.anything, _):
            return nil
        case (.segment(let e), .success(let s)):
            if let d = same(s, e) { return d }
            return Array(s.payload) == e.payload ? nil : "payload bytes differ"
        case (.cutSegment(let e, let captured), .success(let s)):
            if let d = same(s, e) { return d }
            if !s.isSnapTruncated { return "a cut segment not flagged truncated" }
            return Array(s.payload) == Array(e.payload.prefix(captured)) ? nil : "captured payload bytes differ"
        case (.truncated, .failure(.truncated)), (.notTCP, .failure(.notTCP)), (.fragmentHeld, .failure(.fragmentHeld)):
            return nil
        default:
            return "expected \(f.expectation), got \(r)"
        }
    }

    static func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    @Test(arguments: FrameGrammar.linkTypes)
    func noFrameTrapsAndEveryHonestFrameDecodesExactly(linkType: Int32) throws {
        let t0 = Self.now()
        let frames = Self.frames(linkType)
        let t1 = Self.now()
        let decoder = FrameDecoder()
        var tally = Tally()
        var problems: [String] = []
        for (i, f) in frames.enumerated() {
            let ref = FrameRef(input: 0, number: i + 1, time: Self.time(i))
            let key: String
            switch f.expectation {
            case .segment: key = "segment"
            case .cutSegment: key = "cut segment"
            case .truncated: key = "truncated"
            case .notTCP: key = "not TCP"
            case .fragmentHeld: key = "fragment held"
            case .anything: key = "lying"
            }
            tally.expectations[key, default: 0] += 1
            f.bytes.withUnsafeBytes { raw in
                let r = decoder.decode(raw, linkType: f.linkType, frame: ref)
                if let p = Self.problem(r, f, raw), problems.count < 5 {
                    problems.append("frame \(i + 1) [\(f.recipe)]: \(p)\n  bytes \(Self.hex(f.bytes)) (wire length \(f.wireLength))")
                }
                switch r {
                case .success(let s):
                    tally.segments += 1
                    if s.source.port == 5269 || s.destination.port == 5269 {
                        tally.segmentsOnServerPort += 1
                        if s.isSnapTruncated && f.bytes.count >= f.wireLength { tally.lyingSegments += 1 }
                    }
                case .failure(.notTCP): tally.notTCP += 1
                case .failure(.fragmentHeld): tally.held += 1
                case .failure(.truncated): if f.bytes.count < f.wireLength { tally.truncatedCut += 1 } else { tally.truncatedWhole += 1 }
                case .failure(.malformed): tally.malformed += 1
                case .failure(.unsupportedLinkType): problems.append("frame \(i + 1): link type \(linkType) refused")
                }
            }
        }
        let t2 = Self.now()
        #expect(problems.isEmpty, "link type \(linkType), seed \(Self.seed):\n\(problems.joined(separator: "\n"))")
        // The grammar reached every outcome on this link type.
        for kind in ["segment", "cut segment", "truncated", "lying"] {
            #expect(tally.expectations[kind, default: 0] > 100, "link type \(linkType): only \(tally.expectations[kind, default: 0]) '\(kind)' frames")
        }
        #expect(tally.expectations["fragment held", default: 0] > 100 && tally.expectations["not TCP", default: 0] > 100,
                "link type \(linkType): \(tally.expectations)")
        #expect(tally.malformed > 0 && tally.truncatedCut > 0 && tally.held > 0)
        print("[grammar] link type \(linkType): \(frames.count) frames, expected \(tally.expectations.sorted { $0.key < $1.key }), decoded \(tally.segments) segments, \(tally.held) held, \(tally.notTCP) not TCP, \(tally.truncatedCut + tally.truncatedWhole) truncated, \(tally.malformed) malformed")

        // The whole engine, from a pcap file: nothing traps, and its counters are the decoder's.
        var w = PcapWriter(linkType: UInt32(bitPattern: linkType), snapLength: 65_535)
        for (i, f) in frames.enumerated() { w.add(f.bytes, time: Self.time(i), wireLength: f.wireLength) }
        let path = temporaryFile(w.bytes)
        defer { unlink(path) }
        let readers = try Engine.open(paths: [path], filter: nil)
        var configuration = EngineConfiguration()
        configuration.maxAnomaliesKept = 1_000
        let engine = Engine(configuration: configuration)
        for r in readers { engine.read(r) }
        let report = engine.finish()
        let st = report.statistics
        #expect(report.inputs.first?.packets == frames.count && report.inputs.first?.truncated == false)
        #expect(st.packets == frames.count)
        #expect(st.tcpSegments == tally.segmentsOnServerPort, "segments on the s2s port")
        #expect(st.malformedPackets == tally.malformed + tally.truncatedCut + tally.truncatedWhole + tally.lyingSegments)
        #expect(st.anomaliesByKind["malformed-packet", default: 0] == tally.malformed + tally.truncatedWhole + tally.lyingSegments)
        // Snap-cut frames, those the decoder refused and the segments the reassembler saw cut, make
        // one truncated-packet anomaly for the input, which counts the refused ones.
        #expect(st.anomaliesByKind["truncated-packet", default: 0] == 1)
        let cut = report.anomalies.filter { $0.kind == .truncatedPacket }
        let undecodable = "\(tally.truncatedCut) frame\(tally.truncatedCut == 1 ? "" : "s") lost part of the TCP/IP headers and could not be decoded"
        #expect(cut.count == 1 && cut.first?.message.contains(undecodable) == true, "\(cut.first?.message ?? "none")")
        let json = JSONReport.document(report)
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        let summary = parsed?["summary"] as? [String: Any]
        #expect(summary?["packets"] as? Int == frames.count, "the JSON report is produced and says so")
        #expect(!TextReport(color: false, verbose: true).render(report).isEmpty)
        print("[grammar] link type \(linkType): generated in \(String(format: "%.1f", t1 - t0)) s, decoded in \(String(format: "%.1f", t2 - t1)) s, engine and reports in \(String(format: "%.1f", Self.now() - t2)) s")
    }
}
