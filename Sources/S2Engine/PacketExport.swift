import S2Capture
import S2Dialback
import S2Model
import S2Report
import S2Rules
import S2Wire

/// Writes the packets of chosen connections to a new pcap (`--write-pcap`) or pcapng with the
/// findings as packet comments (`--write-pcapng`) after an analysis.
///
/// The engine keeps no packets, so the inputs are read a second time: a frame belongs to a
/// connection when it comes from the connection's input, lies in its frame range
/// [first packet, last packet] and carries its 4-tuple (either direction). IP fragments held
/// for reassembly carry no TCP header; they are kept when their IP header holds the
/// connection's two addresses. Frames are renumbered from 1, input after input. A pcap keeps
/// the inputs' one link type (every chosen connection must come from inputs of one link type);
/// a pcapng has one interface per input and so takes inputs of any link types.
public enum PacketExport {
    /// What `--select` asks for: connections with a violation of one of `rules`, or whose
    /// stream headers or dialback exchanges name one of `domains`. Empty = every connection
    /// with a violation.
    public struct Selection: Sendable {
        public var rules: Set<String>
        public var domains: Set<String>
        public init(rules: Set<String> = [], domains: Set<String> = []) {
            self.rules = rules
            self.domains = domains
        }
        public var isEmpty: Bool { rules.isEmpty && domains.isEmpty }

        /// Parses `rule=ID` / `domain=NAME` items; nil with a reason when one is malformed.
        public static func parse(_ items: [String]) -> Result<Selection, CaptureError> {
            var s = Selection()
            for item in items {
                let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2, !kv[1].isEmpty else {
                    return .failure(CaptureError("--select expects rule=ID or domain=NAME, got '\(item)'"))
                }
                switch kv[0] {
                case "rule": s.rules.insert(kv[1])
                case "domain": s.domains.insert(kv[1].lowercased())
                default: return .failure(CaptureError("--select expects rule=ID or domain=NAME, got '\(item)'"))
                }
            }
            return .success(s)
        }
    }

    /// The connections `selection` picks, plus — with `linked` — the other connections of the
    /// dialback exchanges they take part in, transitively (a db:result on one connection is
    /// judged with the db:verify on another, so re-analysing the export needs both). In report
    /// order.
    public static func connections(in report: AnalysisReport, selection: Selection, linked: Bool = true) -> [ConnectionSummary] {
        var chosen = Set<ConnectionID>()
        if selection.isEmpty {
            chosen = Set(report.violations.map(\.connection))
        } else {
            chosen = Set(report.violations.filter { selection.rules.contains($0.rule) }.map(\.connection))
            if !selection.domains.isEmpty {
                for c in report.connections {
                    let names = c.streams.flatMap { [$0.to, $0.from] }.compactMap { $0?.lowercased() }
                    if names.contains(where: selection.domains.contains) { chosen.insert(c.id) }
                }
                for x in report.exchanges where selection.domains.contains(x.originating.lowercased()) || selection.domains.contains(x.receiving.lowercased()) {
                    for s in x.steps { chosen.insert(s.connection) }
                }
            }
        }
        if linked {
            // Transitively: every connection whose verdicts depend on an exchange that touches
            // a chosen one.
            let groups = report.exchanges.map { Set($0.steps.map(\.connection) + [$0.resultConnection]) }
            var grew = true
            while grew {
                grew = false
                for g in groups where !g.isDisjoint(with: chosen) && !g.isSubset(of: chosen) {
                    chosen.formUnion(g)
                    grew = true
                }
            }
        }
        return report.connections.filter { chosen.contains($0.id) }
    }

    public struct Summary: Sendable {
        public var packets: Int
        public var connections: Int
        public var linkType: String
        /// Comments attached (pcapng only).
        public var comments = 0
        /// The input frame of each written frame, in order (only when asked for).
        public var frames: [FrameKey] = []
    }

    /// A frame of the analysis: its input and its number there.
    public struct FrameKey: Hashable, Sendable {
        public var input: Int
        public var number: Int
        public init(input: Int, number: Int) {
            self.input = input
            self.number = number
        }
    }

    /// Reads `paths` again (the same inputs, in the same order, as the analysis) and writes the
    /// frames of `connections` to `output`. Throws `CaptureError` for standard input, inputs
    /// that cannot be reopened, or connections spread over inputs of different link types.
    @discardableResult
    public static func write(_ connections: [ConnectionSummary], paths: [String], filter: String?, to output: String) throws -> Summary {
        let readers = try reopen(connections, paths: paths, filter: filter, option: "--write-pcap")
        let linkTypes = Set(readers.map(\.linkType))
        if linkTypes.count > 1 {
            throw CaptureError("--write-pcap: the chosen connections come from inputs of different link types (\(linkTypes.map(linkTypeName).sorted().joined(separator: ", "))); a pcap holds one — use --write-pcapng (one interface per input), --select, or one input at a time")
        }
        let linkType: Int32
        if let l = linkTypes.first {
            linkType = l
        } else if let p = paths.first {
            linkType = try PcapFileReader(path: p, inputIndex: 0, filter: nil).linkType  // nothing chosen: an empty capture of the input's type
        } else {
            linkType = 1
        }
        let writer = try PcapDumpWriter(path: output, linkType: linkType, snapLength: max(readers.map(\.snapLength).max() ?? 262_144, 65_535))
        for r in readers {
            frames(of: connections, in: r) { packet in writer.write(packet) }
        }
        try writer.close()
        return Summary(packets: writer.packetsWritten, connections: connections.count, linkType: linkTypeName(linkType))
    }

    /// Like `write`, as pcapng: one interface per input that contributes frames (its link type,
    /// snap length and timestamp resolution kept, its path as the interface's description), and
    /// every finding of `report` whose frame is written attached to that frame as a packet
    /// comment (`frame.comment` in Wireshark): "RULE-ID severity: message" for a violation,
    /// "anomaly KIND: message" for an anomaly. `recordFrames`: return the input frame of every
    /// written frame.
    @discardableResult
    public static func writePcapng(_ connections: [ConnectionSummary], report: AnalysisReport, paths: [String], filter: String?,
                                   to output: String, recordFrames: Bool = false) throws -> Summary {
        let readers = try reopen(connections, paths: paths, filter: filter, option: "--write-pcapng")
        let notes = comments(report)
        let writer = try PcapngWriter(path: output, application: "s2scope \(AnalysisReport.toolVersion)")
        var summary = Summary(packets: 0, connections: connections.count, linkType: "")
        for r in readers {
            let interface = writer.addInterface(.init(linkType: r.linkType, snapLength: r.snapLength, nanosecondTimestamps: r.nanosecondTimestamps,
                                                      name: "input \(r.inputIndex)", description: r.path))
            frames(of: connections, in: r) { packet in
                let key = FrameKey(input: packet.frame.input, number: packet.frame.number)
                writer.write(interface: interface, bytes: packet.bytes, wireLength: packet.wireLength, time: packet.frame.time,
                             comments: notes[key] ?? [])
                if recordFrames { summary.frames.append(key) }
            }
        }
        try writer.close()
        summary.packets = writer.packetsWritten
        summary.comments = writer.commentsWritten
        summary.linkType = Set(readers.map { linkTypeName($0.linkType) }).sorted().joined(separator: ", ")
        return summary
    }

    /// The packet comments of each frame: its violations, then its anomalies, in report order.
    /// Wire text is made terminal-safe (tshark prints comments as they are).
    public static func comments(_ report: AnalysisReport) -> [FrameKey: [String]] {
        var out: [FrameKey: [String]] = [:]
        for v in report.violations {
            out[FrameKey(input: v.frame.input, number: v.frame.number), default: []].append(terminalSafe("\(v.rule) \(v.severity.name): \(v.message)"))
        }
        for a in report.anomalies {
            guard let f = a.frame else { continue }
            out[FrameKey(input: f.input, number: f.number), default: []].append(terminalSafe("anomaly \(a.kind.rawValue): \(a.message)"))
        }
        return out
    }

    /// Opens again the inputs that hold chosen connections.
    static func reopen(_ connections: [ConnectionSummary], paths: [String], filter: String?, option: String) throws -> [PcapFileReader] {
        if paths.contains("-") {
            throw CaptureError("\(option) reads the inputs a second time: standard input ('-') is not supported; save the capture to a file first")
        }
        // A connection may span inputs (the files of a `tcpdump -C`/`-G` rotation).
        let inputs = Set(connections.flatMap { Matcher.span(of: $0) })
        var readers: [PcapFileReader] = []
        for (i, p) in paths.enumerated() where inputs.contains(i) {
            readers.append(try PcapFileReader(path: p, inputIndex: i, filter: filter))
        }
        return readers
    }

    /// Hands `body` every frame of `r` that belongs to one of `connections`.
    static func frames(of connections: [ConnectionSummary], in r: PcapFileReader, _ body: (CapturedPacket) -> Void) {
        let matcher = Matcher(connections, input: r.inputIndex)
        let decoder = FrameDecoder()
        _ = r.read { packet in
            let n = packet.frame.number
            guard matcher.inRange(n) else { return n <= matcher.lastFrame }
            switch decoder.decode(packet.bytes, linkType: packet.linkType, frame: packet.frame) {
            case .success(let seg):
                if matcher.matches(seg.source.description, seg.destination.description, frame: n) { body(packet) }
            case .failure(.fragmentHeld):
                if matcher.matchesFragment(packet.bytes, frame: n) { body(packet) }
            default:
                break
            }
            return true
        }
    }

    /// Frame ranges and 4-tuples of the chosen connections, in one input.
    struct Matcher {
        struct Entry {
            var client: String, server: String
            var range: ClosedRange<Int>
            var addressBytes: [[UInt8]]
        }
        var entries: [Entry]
        var firstFrame = Int.max
        var lastFrame = 0

        /// The inputs a connection's frames lie in: from its first frame's to its last frame's.
        static func span(of c: ConnectionSummary) -> ClosedRange<Int> {
            let end = last(of: c)
            return c.firstFrame.input...max(end.input, c.firstFrame.input)
        }

        static func last(of c: ConnectionSummary) -> FrameRef {
            guard let close = c.closeFrame else { return c.lastFrame }
            return (close.input, close.number) > (c.lastFrame.input, c.lastFrame.number) ? close : c.lastFrame
        }

        /// The part of each connection in `input`: its frame range there (from its first frame, or
        /// the file's start, to its last frame, or the file's end).
        init(_ connections: [ConnectionSummary], input: Int) {
            entries = connections.compactMap { c in
                guard Matcher.span(of: c).contains(input) else { return nil }
                let end = Matcher.last(of: c)
                let lower = c.firstFrame.input == input ? c.firstFrame.number : 1
                let upper = end.input == input ? max(end.number, lower) : Int.max
                let a = PacketExport.bytes(of: c.clientAddress), b = PacketExport.bytes(of: c.serverAddress)
                return Entry(client: c.client, server: c.server, range: lower...upper,
                             addressBytes: a.isEmpty || b.isEmpty ? [] : [a + b, b + a])
            }
            for e in entries {
                firstFrame = min(firstFrame, e.range.lowerBound)
                lastFrame = max(lastFrame, e.range.upperBound)
            }
        }

        func inRange(_ n: Int) -> Bool { n >= firstFrame && n <= lastFrame }

        func matches(_ src: String, _ dst: String, frame n: Int) -> Bool {
            entries.contains { $0.range.contains(n) && (($0.client == src && $0.server == dst) || ($0.client == dst && $0.server == src)) }
        }

        /// A held IP fragment belongs to a connection when its network header carries the
        /// connection's source and destination addresses side by side (IPv4 bytes 12–19,
        /// IPv6 bytes 8–39), within the first 128 bytes of the frame.
        func matchesFragment(_ bytes: UnsafeRawBufferPointer, frame n: Int) -> Bool {
            let head = WireBytes(bytes).prefix(128)
            return entries.contains { e in
                e.range.contains(n) && e.addressBytes.contains { PacketExport.contains(head, $0) }
            }
        }
    }

    static func bytes(of address: String) -> [UInt8] {
        guard let ip = IPAddress(address) else { return [] }
        func be(_ v: UInt64, _ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64(count - 1 - $0))) } }
        return ip.isIPv6 ? be(ip.high, 8) + be(ip.low, 8) : be(ip.low, 4)
    }

    static func contains(_ hay: WireBytes, _ needle: [UInt8]) -> Bool {
        guard let first = needle.first else { return false }
        var from = 0
        while let i = hay.firstOffset(of: first, from: from) {
            if hay.matches(needle, at: i) { return true }
            from = i + 1
        }
        return false
    }
}
