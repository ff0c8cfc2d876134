#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import S2Capture
import S2Model
import S2Reassembly
import S2Rules
import S2Synth
import S2Wire

/// Writes each target's seed corpus from the repository's fixtures (`fixtures/**/*.pcap`,
/// `*.pcapng`) and from the transcripts every rule carries as firing/quiet examples.
public enum Seeds {
    public enum Target: String, CaseIterable { case decode, reassembly, xmpp, pipeline }

    /// The repository root, from this file's location (Fuzz/Sources/FuzzTargets/Seeds.swift).
    public static var defaultRepoRoot: String {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(4)
        return parts.joined(separator: "/")
    }

    /// One capture: its link type and frames.
    struct Capture {
        var name: String
        var linkType: Int32
        var frames: [(bytes: [UInt8], time: Timestamp)]
        var fileBytes: [UInt8]
    }

    /// Captures of grammar frames (`FrameGrammar`), one per supported link type and seed: what
    /// random bytes rarely reach (VLAN stacks, IPv6 chains with fragments and AH, option soup,
    /// lying lengths, cuts at every layer).
    static func grammarCaptures() -> [Capture] {
        var out: [Capture] = []
        for linkType in FrameGrammar.linkTypes {
            for seed in 0..<6 {
                var g = FrameGrammar(seed: UInt64(seed) << 32 | UInt64(UInt32(bitPattern: linkType)))
                var w = PcapWriter(linkType: UInt32(bitPattern: linkType), snapLength: 65_535)
                var frames: [(bytes: [UInt8], time: Timestamp)] = []
                var t = Timestamp(seconds: 1_700_000_000, nanoseconds: 0)
                while frames.count < 24 {
                    for f in g.next(linkType: linkType) {
                        frames.append((f.bytes, t))
                        w.add(f.bytes, time: t, wireLength: f.wireLength)
                        t = t.adding(seconds: 0.001)
                    }
                }
                out.append(Capture(name: "grammar-dlt\(linkType)-\(seed)", linkType: linkType, frames: frames, fileBytes: w.bytes))
            }
        }
        return out
    }

    public static func write(_ target: Target, to dir: String, repoRoot: String = defaultRepoRoot) -> Int {
        mkdir(dir, 0o755)
        var n = 0
        func save(_ name: String, _ bytes: [UInt8]) {
            guard !bytes.isEmpty, bytes.count <= 1 << 20 else { return }
            let path = "\(dir)/\(name)"
            guard let f = fopen(path, "wb") else { return }
            bytes.withUnsafeBytes { _ = fwrite($0.baseAddress!, 1, $0.count, f) }
            fclose(f)
            n += 1
        }
        let grammar = (target == .decode || target == .pipeline) && !GrammarMutator.baseline ? grammarCaptures() : []
        for cap in captures(repoRoot: repoRoot) + grammar {
            switch target {
            case .pipeline:
                save(cap.name, cap.fileBytes)
            case .decode:
                guard let sel = DecodeFuzz.linkTypes.firstIndex(of: cap.linkType) else { continue }
                var all: [UInt8] = []
                for (i, f) in cap.frames.enumerated() {
                    let len = min(f.bytes.count, 65_535)
                    let rec = [UInt8(sel), UInt8(len & 0xff), UInt8(len >> 8)] + f.bytes.prefix(len)
                    if i < 64 { all += rec }
                    if i < 6 { save("\(cap.name)-frame\(i + 1)", rec) }
                }
                save(cap.name, all)
            case .reassembly:
                save(cap.name, reassemblySeed(cap))
            case .xmpp:
                for (i, s) in xmppSeeds(cap).enumerated() { save("\(cap.name)-c\(i + 1)", s) }
            }
        }
        return n
    }

    // MARK: - Sources

    static func captures(repoRoot: String) -> [Capture] {
        var out: [Capture] = []
        for path in files(under: "\(repoRoot)/fixtures").sorted() where path.hasSuffix(".pcap") || path.hasSuffix(".pcapng") {
            guard let reader = try? PcapFileReader(path: path, inputIndex: 0) else { continue }
            var frames: [(bytes: [UInt8], time: Timestamp)] = []
            _ = reader.read { p in
                frames.append((Array(p.bytes), p.frame.time))
                return true
            }
            let name = path.dropFirst(repoRoot.count + 1).replacing("/", with: "_")
            out.append(Capture(name: String(name), linkType: reader.linkType, frames: frames, fileBytes: readFile(path)))
        }
        var k = 0
        for rule in RuleCatalog.all {
            for (kind, list) in [("firing", rule.firing), ("quiet", rule.quiet)] {
                for (i, text) in list.enumerated() {
                    guard let t = try? Transcript(text) else { continue }
                    k += 1
                    out.append(Capture(name: "rule-\(rule.id)-\(kind)\(i + 1)", linkType: 1,
                                       frames: t.frames.map { ($0.bytes, $0.time) }, fileBytes: t.pcap))
                }
            }
        }
        return out
    }

    static func files(under dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let path = "\(dir)/\(name)"
            if e.pointee.d_type == UInt8(DT_DIR) { out += files(under: path) } else { out.append(path) }
        }
        return out
    }

    static func readFile(_ path: String) -> [UInt8] {
        guard let f = fopen(path, "rb") else { return [] }
        defer { fclose(f) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65_536)
        while true {
            let k = fread(&buf, 1, buf.count, f)
            if k <= 0 { break }
            out += buf.prefix(k)
        }
        return out
    }

    static func segments(_ cap: Capture, _ body: (TCPSegment) -> Void) {
        let decoder = FrameDecoder()
        for (i, f) in cap.frames.enumerated() {
            f.bytes.withUnsafeBytes { b in
                if case .success(let seg) = decoder.decode(b, linkType: cap.linkType, frame: FrameRef(input: 0, number: i + 1, time: f.time)) {
                    body(seg)
                }
            }
        }
    }

    // MARK: - Per-target seeds

    /// The capture's TCP segments as `ReassemblyFuzz` descriptors (sequence numbers relative to
    /// the first seen on each side; payload lengths capped at 255).
    static func reassemblySeed(_ cap: Capture) -> [UInt8] {
        var out: [UInt8] = [0]
        var first: [Bool: UInt32] = [:]
        var last = cap.frames.first?.time ?? .zero
        var ports: [UInt16: UInt8] = [:]
        segments(cap) { seg in
            let fromServer = seg.source.port == 5269 || (seg.destination.port != 5269 && seg.source.port < seg.destination.port)
            let clientPort = fromServer ? seg.destination.port : seg.source.port
            let slot = ports[clientPort] ?? UInt8(ports.count & 3)
            ports[clientPort] = slot
            let mine = first[fromServer] ?? seg.sequence
            first[fromServer] = mine
            let peer = first[!fromServer] ?? seg.acknowledgment
            var f: UInt8 = fromServer ? 1 : 0
            if seg.flags.contains(.syn) { f |= 2 }
            if seg.flags.contains(.ack) { f |= 4 }
            if seg.flags.contains(.fin) { f |= 8 }
            if seg.flags.contains(.rst) { f |= 16 }
            f |= slot << 6
            let seq = UInt16(truncatingIfNeeded: (seg.sequence &- mine) &+ 16)
            let ack = seg.flags.contains(.ack) ? UInt16(truncatingIfNeeded: (seg.acknowledgment &- peer) &+ 16) : 0
            let ms = max(0, min(253, Int(seg.frame.time.secondsSince(last) * 1000)))
            last = seg.frame.time
            out += [f, UInt8(seq & 0xff), UInt8(seq >> 8), UInt8(ack & 0xff), UInt8(ack >> 8),
                    UInt8(min(seg.payloadLength, 255)), UInt8(ms), 0]
        }
        return out.count > 1 ? out : []
    }

    /// Each connection's reassembled streams as `XMPPFuzz` operations, in arrival order.
    static func xmppSeeds(_ cap: Capture) -> [[UInt8]] {
        final class Recorder: ReassemblySink {
            var ops: [Int: [UInt8]] = [:]
            func connectionOpened(_ c: TCPConnection) { ops[c.id.value] = [0] }
            func streamData(_ c: TCPConnection, _ d: Direction, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef) {
                var i = 0
                while i < bytes.count {
                    let n = min(255, bytes.count - i)
                    ops[c.id.value, default: [0]] += [UInt8(d.rawValue), UInt8(n)] + bytes[i..<(i + n)]
                    i += n
                }
            }
            func streamGap(_ c: TCPConnection, _ d: Direction, at offset: UInt64, length: UInt64, frame: FrameRef) {
                let l = UInt16(min(length, 65_536) - 1)
                ops[c.id.value, default: [0]] += [UInt8(d.rawValue) | 14, UInt8(l & 0xff), UInt8(l >> 8)]
            }
            func connectionClosed(_ c: TCPConnection) {}
            func anomaly(_ anomaly: Anomaly) {}
        }
        let rec = Recorder()
        let r = TCPReassembler(sink: rec, isServerPort: { $0 == 5269 })
        segments(cap) { r.process($0) }
        r.finish()
        return rec.ops.sorted { $0.key < $1.key }.map(\.value).filter { $0.count > 1 }
    }
}
