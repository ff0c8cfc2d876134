// s2scope-gen — deterministic generator of large, realistic XMPP s2s captures with ground truth.
//
//   s2scope-gen --size 1G --seed 1 --out FILE.pcap [--truth FILE.json]
//   s2scope-gen --hostile-frames 5000 --link-type 1 --seed 1 [--replayable] --out FILE.pcap
//
// Many concurrent dialback sessions between ~200 domains (IPv4 and IPv6), each a full exchange over
// two connections, then stanzas of 50 B to 8 KB (UTF-8 text, entities) cut at the MSS, interleaved,
// ~1% reordered and ~1% retransmitted segments, ~10% non-s2s noise, graceful closes, and injected
// violations at known counts (written to the truth file). See docs/BENCH.md.
#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import S2Model
import S2Synth

struct Truth {
    var links = 0
    var sessions = 0
    var connections = 0
    var stanzas = 0
    var iqRequests = 0
    var reordered = 0
    var retransmitted = 0
    var dialbackValid = 0
    var dialbackInvalid = 0
    var injected = [Int](repeating: 0, count: Injection.allCases.count)
    mutating func inject(_ i: Injection) { injected[i.rawValue] += 1 }
}

struct Options {
    var size: Int64 = 100 << 20
    var seed: UInt64 = 1
    var out = ""
    var truth: String?
    var links = 200
    var domains = 200
    var meanStanzas = 120.0
    var meanGap = 0.4
    var injectEvery = 25
    var quiet = false
    var selftest = false
    var hostileFrames: Int?
    var linkType: Int32 = 1
    var replayable = false

    static func parseSize(_ s: String) -> Int64? {
        var digits = s
        var mul: Int64 = 1
        if let last = s.last?.uppercased() {
            switch last {
            case "K": mul = 1 << 10
            case "M": mul = 1 << 20
            case "G": mul = 1 << 30
            default: break
            }
            if mul != 1 { digits = String(s.dropLast()) }
        }
        guard let v = Double(digits), v > 0 else { return nil }
        return Int64(v * Double(mul))
    }

    static let usage = """
        usage: s2scope-gen --size SIZE --seed N --out FILE.pcap [--truth FILE.json]
                           [--links N] [--domains N] [--mean-stanzas N] [--inject-every N] [--quiet]
               s2scope-gen --hostile-frames N [--link-type DLT] [--replayable] --seed N --out FILE.pcap
               s2scope-gen --selftest
          SIZE: bytes, or with K/M/G suffix (binary: 1G = 2^30 bytes). The file ends within a few KB of it.
          --hostile-frames: N frames of S2Synth's frame grammar instead (lengths that lie, cuts at every
            layer, IPv6 chains, fragments, option soup; issue #16), for replays on a live sensor.
          --replayable: as a link carries them: each frame whole (a cut becomes a frame shorter than
            its headers say), none shorter than the 14-byte Ethernet header (tcpreplay cannot send it).
        """

    static func parse(_ args: [String]) -> Options {
        var o = Options()
        var i = 0
        func value() -> String {
            i += 1
            guard i < args.count else { fail("missing value for \(args[i - 1])") }
            return args[i]
        }
        while i < args.count {
            switch args[i] {
            case "--size": guard let v = parseSize(value()) else { fail("bad --size") }; o.size = v
            case "--seed": guard let v = UInt64(value()) else { fail("bad --seed") }; o.seed = v
            case "--out", "-o": o.out = value()
            case "--truth": o.truth = value()
            case "--links": guard let v = Int(value()), v > 0 else { fail("bad --links") }; o.links = v
            case "--domains": guard let v = Int(value()), v >= 4 else { fail("bad --domains") }; o.domains = v
            case "--mean-stanzas": guard let v = Double(value()), v > 0 else { fail("bad --mean-stanzas") }; o.meanStanzas = v
            case "--inject-every": guard let v = Int(value()), v > 0 else { fail("bad --inject-every") }; o.injectEvery = v
            case "--quiet", "-q": o.quiet = true
            case "--selftest": o.selftest = true
            case "--replayable": o.replayable = true
            case "--hostile-frames": guard let v = Int(value()), v > 0 else { fail("bad --hostile-frames") }; o.hostileFrames = v
            case "--link-type":
                guard let v = Int32(value()), FrameGrammar.linkTypes.contains(v) else { fail("bad --link-type (one of \(FrameGrammar.linkTypes))") }
                o.linkType = v
            case "--help", "-h": print(usage); exit(0)
            default: fail("unknown argument \(args[i])")
            }
            i += 1
        }
        if !o.selftest && o.out.isEmpty { fail("--out is required") }
        return o
    }
}

func fail(_ message: String) -> Never {
    fputs("s2scope-gen: \(message)\n\(Options.usage)\n", stderr)
    exit(2)
}

/// A min-heap of actors by next frame time (ties broken by insertion order: deterministic).
struct Schedule {
    struct Item { var time: Double; var seq: Int; var actor: any Actor }
    private var items: [Item] = []
    private var counter = 0
    var isEmpty: Bool { items.isEmpty }

    @inline(__always) private static func less(_ a: Item, _ b: Item) -> Bool { a.time < b.time || (a.time == b.time && a.seq < b.seq) }

    mutating func push(_ time: Double, _ actor: any Actor) {
        counter += 1
        items.append(Item(time: time, seq: counter, actor: actor))
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if Schedule.less(items[i], items[p]) { items.swapAt(i, p); i = p } else { break }
        }
    }

    mutating func pop() -> Item? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && Schedule.less(items[l], items[m]) { m = l }
                if r < n && Schedule.less(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}

final class Generator {
    let options: Options
    let out: FastPcap
    var rng: Rng
    let corpus: Corpus
    let domains: [Domain]
    var truth = Truth()
    var winding = false
    let reorderRate = 0.035
    let retransmitRate = 0.01
    let noiseShare = 0.10
    var meanGap: Double { options.meanGap }
    private var schedule = Schedule()
    private var activeLinks = 0
    private var activeSessions = 0
    private var lastTime = 0.0
    private var noise: Noise!

    init(options: Options) throws {
        self.options = options
        rng = Rng(seed: options.seed)
        var r = rng.fork()
        corpus = Corpus(rng: &r)
        var d = rng.fork()
        domains = Domain.makeAll(count: options.domains, rng: &d)
        out = try FastPcap(path: options.out)
    }

    /// Popular servers federate more: a skewed pick.
    private func pickDomain() -> Domain {
        let u = rng.unit()
        return domains[min(domains.count - 1, Int(u * u * Double(domains.count)))]
    }

    private func spawnLink(at time: Double) {
        let a = pickDomain()
        var b = pickDomain()
        while b === a { b = domains[rng.below(domains.count)] }
        let v6 = a.v6 != nil && b.v6 != nil && rng.chance(0.7)
        let link = Link(a: a, b: b, v6: v6, rtt: 0.002 + rng.exp(0.04))
        truth.links += 1
        activeLinks += 1
        let first = newSession(link, from: a, to: b)
        schedule.push(time, first)
        if rng.chance(0.8) {
            let second = newSession(link, from: b, to: a)
            first.partner = second
            second.partner = first
            schedule.push(time + 0.05 + rng.exp(1.0), second)
        }
    }

    private func newSession(_ link: Link, from s: Domain, to t: Domain) -> Session {
        let n = truth.sessions
        truth.sessions += 1
        let every = options.injectEvery
        let injection: Injection? = n % every == every / 2 ? Injection.allCases[(n / every) % Injection.allCases.count] : nil
        let invalid = injection == nil && n % 50 == 17
        link.open += 1
        activeSessions += 1
        return Session(link: link, from: s, to: t, injection: injection, invalidKey: invalid, rng: rng.fork(),
                       meanStanzas: options.meanStanzas)
    }

    func run() throws {
        noise = Noise(rng: rng.fork())
        schedule.push(0.001, noise)
        for _ in 0..<options.links { spawnLink(at: rng.uniform(0, 10)) }
        while let item = schedule.pop() {
            let now = item.time
            lastTime = now
            if let next = item.actor.step(self, now: now) {
                schedule.push(next, item.actor)
            } else if let s = item.actor as? Session {
                activeSessions -= 1
                s.link.open -= 1
                if s.link.open == 0 { activeLinks -= 1 }
            }
            if !winding && out.bytesWritten >= options.size - Int64(activeSessions) * 1500 - 4096 {
                winding = true
            }
            if !winding {
                while activeLinks < options.links { spawnLink(at: now + rng.exp(0.5)) }
            }
        }
        try out.close()
    }

    func truthJSON() -> String {
        var j = "{\n"
        func f(_ k: String, _ v: String, last: Bool = false) { j += "  \"\(k)\": \(v)\(last ? "" : ",")\n" }
        f("generator", "\"s2scope-gen 1\"")
        f("seed", "\(options.seed)")
        f("size_target", "\(options.size)")
        f("file_bytes", "\(out.bytesWritten)")
        f("packets", "\(out.packets)")
        f("s2s_packets", "\(out.packets - noise.packets)")
        f("noise_packets", "\(noise.packets)")
        f("noise_bytes", "\(noise.bytes)")
        f("capture_seconds", String(format3: lastTime))
        f("domains", "\(domains.count)")
        f("links", "\(truth.links)")
        f("sessions", "\(truth.sessions)")
        f("s2s_connections", "\(truth.connections)")
        f("xmpp_streams", "\(truth.connections * 2)")
        f("stanzas", "\(truth.stanzas)")
        f("iq_requests", "\(truth.iqRequests)")
        f("reordered_segment_pairs", "\(truth.reordered)")
        f("retransmitted_segments", "\(truth.retransmitted)")
        let total = truth.dialbackValid + truth.dialbackInvalid
        f("dialbacks", "{\"total\": \(total), \"valid\": \(truth.dialbackValid), \"invalid\": \(truth.dialbackInvalid), \"pending\": 0}")
        var ev: [String] = []
        for i in Injection.allCases { ev.append("\"\(i.rule)\": \(truth.injected[i.rawValue])") }
        f("expected_violations", "{" + ev.joined(separator: ", ") + "}")
        f("expected_violations_note", "\"lower bounds per rule (violations + suppressed_violations); any HIGH or CRITICAL finding of another rule is a failure\"")
        f("fail_on_other_severities", "[\"high\", \"critical\"]", last: true)
        j += "}\n"
        return j
    }
}

extension String {
    init(format3 v: Double) {
        let ms = Int((v * 1000).rounded())
        let frac = String(ms % 1000)
        self = "\(ms / 1000).\(String(repeating: "0", count: 3 - frac.count))\(frac)"
    }
}

/// FastPcap frames must equal PacketBuilder's (the fixtures' reference implementation).
func selftest() -> Bool {
    let path = "/tmp/s2scope-gen-selftest-\(getpid()).pcap"
    defer { unlink(path) }
    let macSrc: [UInt8] = [0, 0, 0, 0, 0, 1], macDst: [UInt8] = [0, 0, 0, 0, 0, 2]
    let cases: [(String, String)] = [("10.0.0.1", "10.0.0.2"), ("2001:db8::1", "2001:db8:1::2")]
    var expected: [[UInt8]] = []
    do {
        let w = try FastPcap(path: path)
        var rng = Rng(seed: 7)
        for (s, d) in cases {
            for len in [0, 1, 100, 1448] {
                let payload = (0..<len).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                let seq = UInt32(truncatingIfNeeded: rng.next()), ack = UInt32(truncatingIfNeeded: rng.next())
                let ipID = UInt16(truncatingIfNeeded: rng.next())
                let src = Host(ip: PacketBuilder.addressBytes(s), mac: macSrc), dst = Host(ip: PacketBuilder.addressBytes(d), mac: macDst)
                payload.withUnsafeBytes {
                    w.tcp(time: 1.5, src: src, dst: dst, sport: 40001, dport: 5269, seq: seq, ack: ack, flags: 0x18, ipID: ipID, payload: $0)
                }
                expected.append(PacketBuilder.tcpFrame(src: src.ip, dst: dst.ip, sport: 40001, dport: 5269, seq: seq, ack: ack,
                                                       flags: 0x18, payload: payload[...], ipID: ipID))
            }
        }
        try w.close()
    } catch {
        fputs("selftest: \(error)\n", stderr)
        return false
    }
    guard let fp = fopen(path, "rb") else { return false }
    defer { fclose(fp) }
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&chunk, 1, chunk.count, fp)
        if n <= 0 { break }
        data += chunk[0..<n]
    }
    let header = PcapWriter(linkType: 1, snapLength: 262_144).bytes
    guard Array(data[0..<24]) == header else { fputs("selftest: pcap header differs from PcapWriter\n", stderr); return false }
    var off = 24
    for (i, e) in expected.enumerated() {
        let len = Int(data[off + 8]) | Int(data[off + 9]) << 8 | Int(data[off + 10]) << 16 | Int(data[off + 11]) << 24
        let got = Array(data[(off + 16)..<(off + 16 + len)])
        if got != e { fputs("selftest: frame \(i) differs from PacketBuilder.tcpFrame\n", stderr); return false }
        off += 16 + len
    }
    print("selftest: \(expected.count) frames identical to PacketBuilder.tcpFrame; pcap header identical to PcapWriter")
    return true
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// `--hostile-frames N`: N grammar frames (a fragment group is kept whole) 1 ms apart.
func writeHostileFrames(_ o: Options, count: Int) -> Int32 {
    var g = FrameGrammar(seed: o.seed)
    var w = PcapWriter(linkType: UInt32(bitPattern: o.linkType), snapLength: 262_144)
    var n = 0
    while n < count {
        for f in g.next(linkType: o.linkType) {
            if o.replayable && f.bytes.count < 14 { continue }
            w.add(f.bytes, time: .init(seconds: 1_700_000_000 + Int64(n / 1000), nanoseconds: Int32(n % 1000) * 1_000_000),
                  wireLength: o.replayable ? f.bytes.count : f.wireLength)
            n += 1
        }
    }
    guard let fp = fopen(o.out, "wb") else { fail("cannot write \(o.out)") }
    let ok = w.bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, fp) } == w.bytes.count
    guard fclose(fp) == 0, ok else { fail("writing \(o.out) failed") }
    if !o.quiet { print("s2scope-gen: \(n) hostile frames (link type \(o.linkType), seed \(o.seed)) in \(o.out)") }
    return 0
}

let options = Options.parse(Array(CommandLine.arguments.dropFirst()))
if options.selftest { exit(selftest() ? 0 : 1) }
if let n = options.hostileFrames { exit(writeHostileFrames(options, count: n)) }
do {
    let started = monotonicSeconds()
    let g = try Generator(options: options)
    try g.run()
    let elapsed = monotonicSeconds() - started
    if let t = options.truth {
        let json = g.truthJSON()
        guard let fp = fopen(t, "w") else { fail("cannot write \(t)") }
        fputs(json, fp)
        fclose(fp)
    }
    if !options.quiet {
        let mb = Double(g.out.bytesWritten) / 1e6
        let injected = Injection.allCases.map { "\($0.rule)=\(g.truth.injected[$0.rawValue])" }.joined(separator: " ")
        fputs("s2scope-gen: \(options.out): \(g.out.bytesWritten) bytes, \(g.out.packets) packets, \(g.truth.sessions) sessions, "
              + "\(g.truth.connections) s2s connections, \(g.truth.dialbackValid + g.truth.dialbackInvalid) dialbacks; "
              + "injected \(injected); \(String(format3: elapsed)) s, \(Int(mb / max(elapsed, 1e-9))) MB/s\n", stderr)
    }
} catch {
    fail("\(error)")
}
