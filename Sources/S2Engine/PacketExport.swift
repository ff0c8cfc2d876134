import S2Capture
import S2Dialback
import S2Model
import S2Report
import S2Rules
import S2Wire

/// Writes the packets of chosen connections to a new pcap after an analysis (`--write-pcap`).
///
/// The engine keeps no packets, so the inputs are read a second time: a frame belongs to a
/// connection when it comes from the connection's input, lies in its frame range
/// [first packet, last packet] and carries its 4-tuple (either direction). IP fragments held
/// for reassembly carry no TCP header; they are kept when their IP header holds the
/// connection's two addresses. The written file keeps the inputs' link type (so every chosen
/// connection must come from inputs of one link type) and renumbers frames from 1.
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
    }

    /// Reads `paths` again (the same inputs, in the same order, as the analysis) and writes the
    /// frames of `connections` to `output`. Throws `CaptureError` for standard input, inputs
    /// that cannot be reopened, or connections spread over inputs of different link types.
    @discardableResult
    public static func write(_ connections: [ConnectionSummary], paths: [String], filter: String?, to output: String) throws -> Summary {
        if paths.contains("-") {
            throw CaptureError("--write-pcap reads the inputs a second time: standard input ('-') is not supported; save the capture to a file first")
        }
        let byInput = Dictionary(grouping: connections, by: \.input)
        var readers: [PcapFileReader] = []
        for (i, p) in paths.enumerated() where byInput[i] != nil {
            readers.append(try PcapFileReader(path: p, inputIndex: i, filter: filter))
        }
        let linkTypes = Set(readers.map(\.linkType))
        if linkTypes.count > 1 {
            throw CaptureError("--write-pcap: the chosen connections come from inputs of different link types (\(linkTypes.map(linkTypeName).sorted().joined(separator: ", "))); a pcap holds one — use --select, or one input at a time")
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
            let matcher = Matcher(byInput[r.inputIndex] ?? [])
            let decoder = FrameDecoder()
            _ = r.read { packet in
                let n = packet.frame.number
                guard matcher.inRange(n) else { return n <= matcher.lastFrame }
                switch decoder.decode(packet.bytes, linkType: packet.linkType, frame: packet.frame) {
                case .success(let seg):
                    if matcher.matches(seg.source.description, seg.destination.description, frame: n) { writer.write(packet) }
                case .failure(.fragmentHeld):
                    if matcher.matchesFragment(packet.bytes, frame: n) { writer.write(packet) }
                default:
                    break
                }
                return true
            }
        }
        try writer.close()
        return Summary(packets: writer.packetsWritten, connections: connections.count, linkType: linkTypeName(linkType))
    }

    /// Frame ranges and 4-tuples of the chosen connections of one input.
    struct Matcher {
        struct Entry {
            var client: String, server: String
            var range: ClosedRange<Int>
            var addressBytes: [[UInt8]]
        }
        var entries: [Entry]
        var firstFrame = Int.max
        var lastFrame = 0

        init(_ connections: [ConnectionSummary]) {
            entries = connections.map { c in
                let last = max(c.lastFrame.number, c.closeFrame?.number ?? 0)
                let a = PacketExport.bytes(of: c.clientAddress), b = PacketExport.bytes(of: c.serverAddress)
                return Entry(client: c.client, server: c.server, range: c.firstFrame.number...max(last, c.firstFrame.number),
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
