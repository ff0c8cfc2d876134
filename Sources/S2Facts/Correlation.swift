import FoundationEssentials
import S2Dialback
import S2Model
import S2Report
import S2Rules
import S2XMPP

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// One facts file of a stream: a byte range of a file on disk, from its header line on. Its
/// lines are read when needed, one at a time: `correlate` holds connections, not facts.
public struct FactFile {
    public var path: String
    public var sensor: String
    /// Byte range and the 1-based number of its header line in `path`.
    var start: Int64
    var end: Int64
    var firstLine: Int
    var header: Fact
    var endFact: Fact?
    var inputs: [FactInput] { endFact?.inputs ?? header.inputs ?? [] }
    /// Where errors point: the path, and which file of a stream.
    var name: String
}

/// What the first pass of `correlate` reads of a line.
struct FactHead: Decodable {
    var t: String
    var c: Int?
    var d: Int?
    var kind: String?
    var frame: FactFrame?
    var first: FactFrame?
    var last: FactFrame?
    var seq: [UInt32?]?
    var client: String?
    var server: String?
    var xml: String?
    var ns: [FactNamespace]?

    var fact: Fact {
        var f = Fact(t: t)
        f.c = c
        f.d = d
        f.kind = kind
        f.frame = frame
        f.first = first
        f.last = last
        f.seq = seq
        f.client = client
        f.server = server
        f.xml = xml
        f.ns = ns
        return f
    }
}

/// Reads the lines of a byte range of a file, each at most `maxLineBytes` long.
final class FactLineReader {
    private let file: UnsafeMutablePointer<FILE>
    private let path: String
    private var remaining: Int64
    private var buffer: [UInt8] = []
    private var head = 0
    private var eof = false
    private let maxLineBytes: Int
    /// Byte offset in the file of the next line, and its 1-based number.
    private(set) var offset: Int64
    private(set) var lineNumber: Int

    init(path: String, start: Int64 = 0, end: Int64 = .max, firstLine: Int = 1, maxLineBytes: Int) throws {
        guard let f = fopen(path, "r") else { throw FactError("\(path): cannot read") }
        if start > 0 && fseeko(f, off_t(start), SEEK_SET) != 0 {
            fclose(f)
            throw FactError("\(path): cannot seek")
        }
        file = f
        self.path = path
        remaining = end &- start
        offset = start
        lineNumber = firstLine
        self.maxLineBytes = maxLineBytes
    }

    deinit { fclose(file) }

    /// The next line without its newline (nil at the end); empty lines are skipped.
    func next() throws -> [UInt8]? {
        while true {
            if let nl = buffer[head...].firstIndex(of: 0x0A) {
                let line = Array(buffer[head..<nl])
                let used = nl + 1 - head
                head = nl + 1
                offset += Int64(used)
                lineNumber += 1
                if head > 1 << 20 { buffer.removeFirst(head); head = 0 }
                if line.isEmpty { continue }
                return line
            }
            if buffer.count - head > maxLineBytes { throw FactError("\(path):\(lineNumber): a line longer than \(maxLineBytes) bytes") }
            if eof || remaining <= 0 {
                guard head < buffer.count else { return nil }
                let line = Array(buffer[head...])
                offset += Int64(line.count)
                head = buffer.count
                lineNumber += 1
                return line
            }
            var chunk = [UInt8](repeating: 0, count: Int(min(Int64(1 << 16), remaining)))
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if n < chunk.count {
                if ferror(file) != 0 { throw FactError("\(path): read error") }
                eof = true
            }
            remaining -= Int64(n)
            buffer.append(contentsOf: chunk[0..<n])
        }
    }
}

public struct FactError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Joins the facts of many sensors into one report: the correlator runs once over every
/// connection's facts in capture time order, a TCP connection that several sensors saw counts
/// once, and the findings the shards judged alone are merged in (docs/FACTS.md).
public final class Correlation {
    public struct Options {
        public var rules = RuleConfiguration()
        public var hosts: [String: Set<String>] = [:]
        /// Seconds two sensors' clocks may disagree.
        public var maxSkew: Double = 5
        public var maxAnomaliesKept = 10_000
        public init() {}
    }

    /// A connection as one file saw it.
    struct Copy {
        var file: Int
        var c: Int
        var client: String
        var server: String
        var seq: UInt32?
        var first: Int64
        var last: Int64
        var events: Int
    }

    let paths: [String]
    /// The facts files of the paths (a stream may hold several), found by the first pass.
    private(set) var files: [FactFile] = []
    let options: Options
    private let decoder = JSONDecoder()
    /// Offset (ns) added to every time of a sensor to bring it onto the first sensor's clock.
    public private(set) var clockOffsets: [String: Int64] = [:]
    /// Connections seen by more than one sensor, counted once.
    public private(set) var duplicateCopies = 0

    public init(paths: [String], options: Options = .init()) {
        self.paths = paths
        self.options = options
    }

    public var maxLineBytes = 32 << 20

    private func decode(_ line: [UInt8], _ path: String, _ number: Int) throws -> Fact {
        do {
            return try decoder.decode(Fact.self, from: Data(line))
        } catch {
            throw FactError("\(path):\(number): not a fact line (\(error))")
        }
    }

    /// Every line of file `fi` with its index in the file (the header is 0), read from disk.
    private func forEachFact(of fi: Int, _ body: (Int, Fact) throws -> Void) throws {
        let f = files[fi]
        let reader = try FactLineReader(path: f.path, start: f.start, end: f.end, firstLine: f.firstLine, maxLineBytes: maxLineBytes)
        var index = 0
        while let line = try reader.next() {
            try body(index, try decode(line, f.path, reader.lineNumber - 1))
            index += 1
        }
    }

    /// A file's lines one at a time, for the merge.
    private final class Cursor {
        let file: Int
        let reader: FactLineReader
        var index = 0
        var key = Int64.min / 2
        var fact: Fact?
        init(file: Int, reader: FactLineReader) {
            self.file = file
            self.reader = reader
        }
    }

    /// Cross-connection rules whose violation says a step was not seen anywhere (no verification,
    /// no matching request, a verdict never relayed): across sensors whose clocks disagree, the
    /// step may only have been sorted after the moment it was looked for.
    static let unmatchedStepRules: Set<String> = ["DB-CORR-1", "DB-CORR-3", "DB-CORR-7", "DB-CORR-9", "DB-RCV-9"]

    /// Sensors aligned on dialback steps (no connection in common with the others), and the
    /// offset found; those whose steps matched only beyond `--max-skew` (not applied).
    public private(set) var alignedOnDialback: [String: Int64] = [:]
    public private(set) var skewBeyondTolerance: [String: Int64] = [:]

    private var inputBase: [Int] = []
    private var inputCount: [Int] = []
    private var copies: [Copy] = []
    private var dropped: Set<Pair> = []

    public func run() throws -> AnalysisReport {
        try prepare()
        var offsets = clockOffsets
        let sensors = Set(files.map(\.sensor))
        let tolerance = Int64(options.maxSkew * 1e9)
        if sensors.count > 1 {
            // Sensors that share no connection with the reference are aligned on the dialback
            // exchanges whose legs they saw: within the tolerance the steps are made to meet.
            for s in sensors.sorted() where offsets[s] == nil {
                guard let d = try dialbackOffset(of: s, given: offsets) else { continue }
                if d.magnitude <= tolerance.magnitude {
                    offsets[s] = d
                    alignedOnDialback[s] = d
                } else {
                    skewBeyondTolerance[s] = d
                }
            }
        }
        let (report, crossViolations) = try replay(offsets: offsets)
        guard !skewBeyondTolerance.isEmpty else { return report }
        // Would the steps meet with the larger skew? Then what did not meet is an anomaly, not a violation.
        var shifted = offsets
        for (s, d) in skewBeyondTolerance { shifted[s] = d }
        let (_, alternative) = try replay(offsets: shifted)
        struct Key: Hashable { var rule: String; var direction: Direction; var input: Int; var number: Int }
        let stands = Set(alternative.map { Key(rule: $0.rule, direction: $0.direction, input: $0.frame.input, number: $0.frame.number) })
        var artefacts: [Violation] = []
        for v in crossViolations where Self.unmatchedStepRules.contains(v.rule)
            && !stands.contains(Key(rule: v.rule, direction: v.direction, input: v.frame.input, number: v.frame.number)) {
            artefacts.append(v)
        }
        guard !artefacts.isEmpty else { return report }
        let skews = skewBeyondTolerance.sorted { $0.key < $1.key }
            .map { "\($0.key) \(String(format: "%+.3f", Double($0.value) / 1e9)) s" }.joined(separator: ", ")
        for v in artefacts {
            if let i = report.violations.firstIndex(where: { $0.rule == v.rule && $0.frame == v.frame && $0.connection == v.connection && $0.message == v.message }) {
                report.violations.remove(at: i)
            }
            let a = Anomaly(kind: .clockSkew, connection: v.connection, direction: v.direction, frame: v.frame,
                            message: "\(v.rule) not reported: the steps it looked for were seen by another sensor and meet only if the sensors' clocks differ by more than --max-skew (\(options.maxSkew) s; dialback steps put them at \(skews)): \(v.message)")
            report.statistics.anomaliesByKind[a.kind.rawValue, default: 0] += 1
            report.anomalies.append(a)
        }
        return report
    }

    /// Reads the connections of every file, aligns clocks on shared connections and picks one
    /// copy of each connection.
    private func prepare() throws {
        // The first pass: the files of every path (a stream may hold several), their connections
        // and the dialback steps they saw.
        files = []
        copies = []
        steps = []
        var copyIndex: [Pair: Int] = [:]
        var acceptorID: [Pair: String] = [:]
        for path in paths {
            let reader = try FactLineReader(path: path, maxLineBytes: maxLineBytes)
            var lineStart = reader.offset
            var current: Int?  // the file of this path being read
            func header(_ x: Fact, number: Int, lineStart: Int64) throws {
                guard let format = x.format else { throw FactError("\(path):\(number): a header without its format") }
                guard format == Fact.format else { throw FactError("\(path):\(number): facts format '\(format)' is not supported (this s2scope reads \(Fact.format))") }
                if let current { files[current].end = lineStart }
                let name = current == nil ? path : "\(path) (file from line \(number))"
                current = files.count
                files.append(FactFile(path: path, sensor: x.sensor ?? path, start: lineStart, end: .max, firstLine: number, header: x, endFact: nil, name: name))
            }
            while let line = try reader.next() {
                let number = reader.lineNumber - 1
                // The first pass reads only what it needs: most lines are elements, whose XML it
                // looks at only when it may be dialback.
                let x: Fact
                do {
                    x = try decoder.decode(FactHead.self, from: Data(line)).fact
                } catch {
                    throw FactError("\(path):\(number): not a fact line (\(error))")
                }
                defer { lineStart = reader.offset }
                if x.t == "header" || x.t == "end" {
                    // Headers and ends are rare: read whole.
                    let full = try decode(line, path, number)
                    if x.t == "end" {
                        guard let fi = current else { throw FactError("\(path): the first line is not a facts header") }
                        files[fi].endFact = full
                        continue
                    }
                    try header(full, number: number, lineStart: lineStart)
                    continue
                }
                guard let fi = current else { throw FactError("\(path): the first line is not a facts header") }
                guard let c = x.c else { continue }
                if x.t == "event", let step = try dialbackStep(x, acceptorID: &acceptorID, file: fi, c: c) { steps.append(step) }
                switch x.t {
                case "open":
                    guard let client = x.client, let server = x.server, let frame = x.frame else { throw FactError("\(path):\(number): an open fact without endpoints or frame") }
                    copyIndex[Pair(file: fi, c: c)] = copies.count
                    copies.append(Copy(file: fi, c: c, client: client, server: server, seq: x.seq?.first ?? nil,
                                       first: frame.t, last: frame.t, events: 0))
                case "event":
                    if let i = copyIndex[Pair(file: fi, c: c)] {
                        copies[i].events += 1
                        if let l = x.last { copies[i].last = max(copies[i].last, l.t) }
                    }
                case "close":
                    if let i = copyIndex[Pair(file: fi, c: c)], let l = x.last { copies[i].last = max(copies[i].last, l.t) }
                default: break
                }
            }
            guard current != nil else { throw FactError("\(path): empty facts file") }
        }
        inputBase = []
        inputCount = []
        var count = 0
        for f in files {
            inputBase.append(count)
            inputCount.append(f.inputs.count)
            count += f.inputs.count
        }
        estimateClocks(copies)
        func offset(_ fi: Int) -> Int64 { clockOffsets[files[fi].sensor] ?? 0 }
        // The same TCP connection seen by several sensors: kept once, from the sensor that saw most of it.
        let skew = Int64(options.maxSkew * 1e9)
        var byTuple: [String: [Int]] = [:]
        for (i, k) in copies.enumerated() { byTuple[k.client + " " + k.server, default: []].append(i) }
        dropped = []
        for (_, group) in byTuple where group.count > 1 {
            var clusters: [[Int]] = []
            for i in group {
                let a = copies[i]
                if let j = clusters.firstIndex(where: { cl in cl.contains { sameConnection(a, copies[$0], skew: skew, offset: offset) } }) {
                    clusters[j].append(i)
                } else {
                    clusters.append([i])
                }
            }
            for cl in clusters where cl.count > 1 {
                let keep = cl.min { a, b in
                    (copies[a].events, -copies[a].file) > (copies[b].events, -copies[b].file)
                }!
                for i in cl where i != keep {
                    dropped.insert(Pair(file: copies[i].file, c: copies[i].c))
                    duplicateCopies += 1
                }
            }
        }
    }

    /// Runs the correlator over every kept copy's facts with the sensors' clocks moved by
    /// `offsets` (ns); returns the report and the correlator's own violations.
    private func replay(offsets: [String: Int64]) throws -> (AnalysisReport, [Violation]) {
        let report = AnalysisReport()
        for f in files {
            for i in f.inputs {
                report.inputs.append(InputSummary(path: "\(f.sensor)/\(i.path)", format: i.format, linkType: i.link_type,
                                                  packets: i.packets ?? 0, bytes: i.bytes ?? 0, truncated: i.truncated ?? false, note: i.note))
            }
        }
        func offset(_ fi: Int) -> Int64 { offsets[files[fi].sensor] ?? 0 }
        // Report-wide connection numbers: one file keeps its own; several are numbered anew in
        // order of first frame.
        var ids: [Pair: ConnectionID] = [:]
        let kept = copies.filter { !dropped.contains(Pair(file: $0.file, c: $0.c)) }
        if files.count == 1 {
            for k in kept { ids[Pair(file: k.file, c: k.c)] = ConnectionID(k.c) }
        } else {
            let ordered = kept.sorted { ($0.first &+ offset($0.file), $0.file, $0.c) < ($1.first &+ offset($1.file), $1.file, $1.c) }
            for (n, k) in ordered.enumerated() { ids[Pair(file: k.file, c: k.c)] = ConnectionID(n + 1) }
        }
        var nextID = (ids.values.map(\.value).max() ?? 0) + 1
        let analyzer = Analyzer(configuration: options.rules, hosts: options.hosts, scopes: [.correlation])
        analyzer.context.keepViolations = true
        analyzer.context.onAnomaly = { [options] a in
            report.statistics.anomaliesByKind[a.kind.rawValue, default: 0] += 1
            if report.anomalies.count < options.maxAnomaliesKept { report.anomalies.append(a) }
        }
        var models: [Pair: ConnectionModel] = [:]
        var shardViolations: [Violation] = []
        var shardNotJudged: [NotJudged] = []
        var shardNotJudgedCounts: [String: Int] = [:]
        var silent = 0
        var limitFromShards = 0
        // Facts in capture time order: the files are merged line by line. A fact's place is the
        // capture time of what it reports (an element: the frame that completed it), never earlier
        // than the line before (a file's order is kept); lines without a time of their own
        // (findings) keep their place after the line before. The shard's clock (`now`) lags when
        // its sensor saw nothing for a while: not a place to sort by. The connections a sensor still
        // had open when its capture ended close after every other fact, as they would at the end of
        // one capture holding everything.
        let cursors = try files.indices.map { fi in
            Cursor(file: fi, reader: try FactLineReader(path: files[fi].path, start: files[fi].start, end: files[fi].end,
                                                     firstLine: files[fi].firstLine, maxLineBytes: maxLineBytes))
        }
        func advance(_ cur: Cursor) throws {
            cur.fact = nil
            while let line = try cur.reader.next() {
                let x = try decode(line, files[cur.file].path, cur.reader.lineNumber - 1)
                cur.index += 1
                if cur.index == 1 { continue }  // the header
                let own: Int64?
                switch x.t {
                case "event": own = x.last?.t
                case "open": own = x.frame?.t
                case "close": own = x.last?.t
                case "anomaly": own = x.frame?.t
                case "time", "damaged", "end": own = x.now
                default: own = nil
                }
                if let own { cur.key = max(cur.key, own) }
                if let c = x.c, dropped.contains(Pair(file: cur.file, c: c)) { continue }
                cur.fact = x
                return
            }
        }
        for cur in cursors { try advance(cur) }
        struct Deferred { var key: Int64; var file: Int; var line: Int; var fact: Fact }
        var deferred: [Deferred] = []
        var deferredHead = 0
        while true {
            var pick: Cursor?
            for cur in cursors where cur.fact != nil {
                if let p = pick, (p.key &+ offset(p.file), p.file) <= (cur.key &+ offset(cur.file), cur.file) { continue }
                pick = cur
            }
            let fi: Int, x: Fact, lineIndex: Int
            if let cur = pick {
                fi = cur.file
                x = cur.fact!
                lineIndex = cur.index - 1
                let key = cur.key &+ offset(fi)
                try advance(cur)
                if files.count > 1 && x.t == "close" && x.end == "capture-ended" {
                    deferred.append(Deferred(key: key, file: fi, line: lineIndex, fact: x))
                    continue
                }
            } else {
                if deferredHead == 0 { deferred.sort { ($0.key, $0.file, $0.line) < ($1.key, $1.file, $1.line) } }
                guard deferredHead < deferred.count else { break }
                fi = deferred[deferredHead].file
                x = deferred[deferredHead].fact
                lineIndex = deferred[deferredHead].line
                deferredHead += 1
            }
            let item = (file: fi, line: lineIndex)
            let off = offset(fi)
            func frame(_ f: FactFrame?) throws -> FrameRef {
                guard let f else { throw FactError("\(files[fi].name):\(files[fi].firstLine + item.line): a fact without its frame") }
                guard f.i >= 0, f.i < inputCount[fi] else { throw FactError("\(files[fi].name):\(files[fi].firstLine + item.line): a frame of input \(f.i), which the header does not list") }
                return FrameRef(input: inputBase[fi] + f.i, number: f.n, time: Timestamp(totalNanoseconds: f.t &+ off))
            }
            func time(_ t: Int64?) -> Timestamp? { t.map { Timestamp(totalNanoseconds: $0 &+ off) } }
            func connection() throws -> (ConnectionID, ConnectionModel?) {
                guard let c = x.c else { throw FactError("\(files[fi].name):\(files[fi].firstLine + item.line): a fact without its connection") }
                if let id = ids[Pair(file: fi, c: c)] { return (id, models[Pair(file: fi, c: c)]) }
                // A connection that never carried a byte has anomalies (a scan, a timeout) but no open fact.
                let id = files.count == 1 ? ConnectionID(c) : ConnectionID(nextID)
                if files.count > 1 { nextID += 1 }
                ids[Pair(file: fi, c: c)] = id
                return (id, nil)
            }
            func direction() throws -> Direction {
                guard let d = x.d.flatMap(Direction.init(rawValue:)) else { throw FactError("\(files[fi].name):\(files[fi].firstLine + item.line): no direction") }
                return d
            }
            if x.t != "anomaly" && x.t != "finding" && x.t != "not_judged", let now = time(x.now), now > analyzer.context.now {
                analyzer.advance(to: now)
            }
            switch x.t {
            case "time", "header":
                break
            case "open":
                let (id, _) = try connection()
                let f = try frame(x.frame)
                let m = analyzer.open(id: id, client: x.client ?? "", server: x.server ?? "", clientAddress: x.client_address ?? "",
                                      serverAddress: x.server_address ?? "", input: f.input, frame: f)
                m.handshakeSeen = x.handshake ?? false
                models[Pair(file: fi, c: x.c!)] = m
            case "event":
                let (_, m) = try connection()
                guard let m else { continue }
                let kind = try eventKind(x, file: fi, line: item.line)
                guard (x.start ?? 0) <= (x.end_offset ?? 0) else { throw FactError("\(files[fi].name):\(files[fi].firstLine + item.line): an event that ends before it starts") }
                let e = XMPPEvent(kind: kind, direction: try direction(), startOffset: x.start ?? 0, endOffset: x.end_offset ?? 0,
                                  firstFrame: try frame(x.first), lastFrame: try frame(x.last), tentative: x.tentative ?? false)
                analyzer.event(e, on: m)
            case "damaged":
                let (_, m) = try connection()
                if let m { analyzer.damaged(m, try direction()) }
            case "close":
                let (_, m) = try connection()
                guard let m else { continue }
                let end: ConnectionEnd
                switch x.end {
                case "fin": end = .fin
                case "rst": end = .rst
                case "unwatched": end = .unwatched(at: time(x.at) ?? analyzer.context.now)
                default:
                    let fin = x.fin ?? [false, false]
                    end = .captureEnded(fin: PerDirection(fin.first ?? false, fin.count > 1 ? fin[1] : false))
                }
                analyzer.closed(m, end: end, frame: try frame(x.last))
                if let t = x.tls {
                    var r = TLSReportInfo()
                    r.version = t.version
                    r.clientVersions = t.client_versions
                    r.cipherSuite = t.cipher_suite
                    r.sni = t.sni
                    r.alpn = t.alpn
                    r.alpnOffered = t.alpn_offered
                    r.helloRetryRequest = t.hello_retry_request
                    r.clientCertificates = t.client_certificates
                    r.serverCertificates = t.server_certificates
                    r.alerts = t.alerts
                    r.records = t.records
                    r.decryption = t.decryption
                    r.decryptionNote = t.decryption_note
                    r.decryptedBytes = t.decrypted_bytes
                    r.undecryptedBytes = t.undecrypted_bytes
                    r.clientCertificate = try t.client_certificate?.report(frame: { try frame($0) })
                    r.serverCertificate = try t.server_certificate?.report(frame: { try frame($0) })
                    report.tlsInfo[m.id] = r
                }
                if !m.carriedXMPP && !(x.shard_findings ?? false) && !analyzer.hasFindings(on: m) {
                    silent += 1
                    analyzer.discard(m)
                } else {
                    analyzer.retire(m)
                }
                models[Pair(file: fi, c: x.c!)] = nil
            case "anomaly":
                guard let kind = x.anomaly.flatMap(AnomalyKind.init(rawValue:)) else { continue }
                let id = try x.c.map { _ in try connection().0 }
                let a = Anomaly(kind: kind, connection: id, direction: x.d.flatMap(Direction.init(rawValue:)),
                                frame: try x.frame.map { try frame($0) }, bytes: x.bytes, time: time(x.time), message: x.message ?? "")
                report.statistics.anomaliesByKind[a.kind.rawValue, default: 0] += 1
                if report.anomalies.count < options.maxAnomaliesKept { report.anomalies.append(a) }
            case "finding":
                let (id, _) = try connection()
                guard let rule = x.rule, let sev = x.severity.flatMap(Severity.init(name:)), let actor = x.actor.flatMap(Actor.init(rawValue:)) else {
                    throw FactError("\(files[fi].name):\(files[fi].firstLine + item.line): a finding without rule, severity or actor")
                }
                shardViolations.append(Violation(rule: rule, severity: sev, connection: id, direction: try direction(), actor: actor,
                                                 frame: try frame(x.frame), message: x.message ?? "", evidence: x.evidence ?? ""))
            case "not_judged":
                let (id, _) = try connection()
                guard let rule = x.rule, let why = x.why.flatMap(Unobserved.init(rawValue:)) else { continue }
                shardNotJudged.append(NotJudged(rule: rule, connection: id, frame: try frame(x.frame), why: why, count: x.count ?? 1))
            case "end":
                guard let s = x.stats else { continue }
                var r = report.statistics
                r.packets += s.packets
                r.bytes += s.bytes
                r.tcpSegments += s.tcp_segments
                r.tcpConnections += s.tcp_connections
                r.connectionsWithoutXMPP += s.connections_without_stream
                r.malformedPackets += s.malformed_packets
                r.encryptedBytes = r.encryptedBytes.saturatingAdd(s.encrypted_bytes)
                r.gapBytes = r.gapBytes.saturatingAdd(s.gap_bytes)
                r.connectionsEvicted += s.connections_evicted
                r.connectionsEvictedForMemory += s.connections_evicted_for_memory
                r.midstreamConnections += s.midstream_connections
                r.elementsNotJudged += s.elements_not_judged
                r.suppressedViolations.merge(s.suppressed, uniquingKeysWith: +)
                report.statistics = r
                shardNotJudgedCounts.merge(s.not_judged, uniquingKeysWith: +)
                limitFromShards += s.untracked_requests
            default:
                // A later minor version may add line kinds: what this version does not know it skips.
                break
            }
        }
        analyzer.finish()
        report.connections = analyzer.model.retireAll()
        report.exchanges = analyzer.model.exchanges
        report.violations = (shardViolations + analyzer.violations).sorted {
            ($0.frame.input, $0.frame.number, $0.connection, $0.rule, $0.message) < ($1.frame.input, $1.frame.number, $1.connection, $1.rule, $1.message)
        }
        report.statistics.connectionsWithoutXMPP += silent
        report.statistics.suppressedViolations.merge(analyzer.context.suppressed, uniquingKeysWith: +)
        report.notJudged = (shardNotJudged + analyzer.context.notJudged).sorted {
            ($0.frame.input, $0.frame.number, $0.connection, $0.rule, $0.why) < ($1.frame.input, $1.frame.number, $1.connection, $1.rule, $1.why)
        }
        var counts = shardNotJudgedCounts
        for (k, v) in analyzer.context.notJudgedCounts { counts[k.rawValue, default: 0] += v }
        report.statistics.notJudgedByReason = counts
        if limitFromShards > 0 { report.statistics.notJudgedByReason["limit", default: 0] += limitFromShards }
        return (report, analyzer.violations)
    }

    /// The offset (ns) that brings sensor `s` onto the clock of the sensors in `given`, from the
    /// dialback exchanges whose db:result leg one side saw and whose db:verify leg the other did:
    /// the verify round trip lies inside the result's. The offsets that put every such verify
    /// inside its result form an interval: 0 when it holds 0 (the steps already meet), else its
    /// middle. When no offset satisfies them all, the median of the offsets that
    /// put each verify's middle at its result's middle. Nil when no exchange spans the two.
    /// A dialback request or answer one connection carried, as the first pass saw it.
    struct DialbackStep {
        enum Kind { case resultRequest, resultAnswer, verifyRequest, verifyAnswer }
        var kind: Kind
        var key: ExchangeKey
        var file: Int
        var c: Int
        var time: Int64
    }

    struct ExchangeKey: Hashable { var id: String; var originating: String; var receiving: String }

    private var steps: [DialbackStep] = []

    /// The dialback step an event fact carries, if any (the first pass keeps each connection's
    /// acceptor stream id: a db:result is keyed by the receiving server's stream id).
    private func dialbackStep(_ x: Fact, acceptorID: inout [Pair: String], file: Int, c: Int) throws -> DialbackStep? {
        guard let xml = x.xml, let t = x.first?.t else { return nil }
        if x.kind == "header" {
            if x.d == 1, let h = FactXML.parseHeader(xml, hadXMLDeclaration: false, declaredEncoding: nil), let id = h.id {
                acceptorID[Pair(file: file, c: c)] = id
            }
            return nil
        }
        // Only elements that can be in the dialback namespace are parsed here.
        guard x.kind == "element", xml.utf8.count < 1 << 16,
              xml.contains(Namespace.dialback) || (x.ns ?? []).contains(where: { $0.uri == Namespace.dialback }),
              let el = FactXML.parseElement(SerializedElement(xml: xml, context: (x.ns ?? []).map { NamespaceDeclaration(prefix: $0.prefix, uri: $0.uri) }, truncated: [])),
              el.namespace == Namespace.dialback else { return nil }
        let from = normalizedDomain(el[attribute: "from"] ?? ""), to = normalizedDomain(el[attribute: "to"] ?? "")
        let typed = el[attribute: "type"] != nil
        switch el.local {
        case "result":
            guard let id = acceptorID[Pair(file: file, c: c)] else { return nil }
            return typed ? DialbackStep(kind: .resultAnswer, key: ExchangeKey(id: id, originating: to, receiving: from), file: file, c: c, time: t)
                : DialbackStep(kind: .resultRequest, key: ExchangeKey(id: id, originating: from, receiving: to), file: file, c: c, time: t)
        case "verify":
            guard let id = el[attribute: "id"] else { return nil }
            return typed ? DialbackStep(kind: .verifyAnswer, key: ExchangeKey(id: id, originating: from, receiving: to), file: file, c: c, time: t)
                : DialbackStep(kind: .verifyRequest, key: ExchangeKey(id: id, originating: to, receiving: from), file: file, c: c, time: t)
        default:
            return nil
        }
    }

    private func dialbackOffset(of s: String, given: [String: Int64]) throws -> Int64? {
        struct Step { var sensor: String; var request: Int64?; var answer: Int64? }
        var results: [ExchangeKey: [Step]] = [:]
        var verifies: [ExchangeKey: [Step]] = [:]
        for x in steps where !dropped.contains(Pair(file: x.file, c: x.c)) {
            let sensor = files[x.file].sensor
            switch x.kind {
            case .resultRequest: results[x.key, default: []].append(Step(sensor: sensor, request: x.time))
            case .verifyRequest: verifies[x.key, default: []].append(Step(sensor: sensor, request: x.time))
            case .resultAnswer:
                if var list = results[x.key], let i = list.lastIndex(where: { $0.sensor == sensor && $0.answer == nil }) {
                    list[i].answer = x.time
                    results[x.key] = list
                }
            case .verifyAnswer:
                if var list = verifies[x.key], let i = list.lastIndex(where: { $0.sensor == sensor && $0.answer == nil }) {
                    list[i].answer = x.time
                    verifies[x.key] = list
                }
            }
        }
        func middle(_ x: Step) -> Int64? {
            guard let r = x.request else { return nil }
            return x.answer.map { r / 2 + $0 / 2 } ?? r
        }
        var candidates: [Int64] = []
        var low = Int64.min, high = Int64.max
        for (key, rs) in results {
            for r in rs {
                for v in verifies[key] ?? [] {
                    guard let mr = middle(r), let mv = middle(v), let rq = r.request, let vq = v.request else { continue }
                    if r.sensor == s, v.sensor != s, let o = given[v.sensor] {
                        // s's clock + d = the reference: the result request before the verify request,
                        // the verify answer before the result answer.
                        candidates.append(mv &+ o &- mr)
                        high = min(high, vq &+ o &- rq)
                        if let ra = r.answer, let va = v.answer { low = max(low, va &+ o &- ra) }
                    }
                    if v.sensor == s, r.sensor != s, let o = given[r.sensor] {
                        candidates.append(mr &+ o &- mv)
                        low = max(low, rq &+ o &- vq)
                        if let ra = r.answer, let va = v.answer { high = min(high, ra &+ o &- va) }
                    }
                }
            }
        }
        guard !candidates.isEmpty else { return nil }
        if low <= high {
            if low <= 0 && 0 <= high { return 0 }
            // Half way between the bounds that are known (one may be open).
            if low == Int64.min { return high }
            if high == Int64.max { return low }
            return low / 2 + high / 2
        }
        return candidates.sorted()[candidates.count / 2]
    }

    struct Pair: Hashable {
        var file: Int
        var c: Int
    }

    /// Two copies with the same 4-tuple are one connection when their first sequence numbers
    /// agree, or (one sensor missed the SYN) when their lifetimes overlap within the skew.
    private func sameConnection(_ a: Copy, _ b: Copy, skew: Int64, offset: (Int) -> Int64) -> Bool {
        guard a.file != b.file, files[a.file].sensor != files[b.file].sensor else { return false }
        if let x = a.seq, let y = b.seq { return x == y }
        let (a0, a1) = (a.first &+ offset(a.file), a.last &+ offset(a.file))
        let (b0, b1) = (b.first &+ offset(b.file), b.last &+ offset(b.file))
        return a0 <= b1 &+ skew && b0 <= a1 &+ skew
    }

    /// Sensors' clocks from the connections two of them saw from the SYN on: the same first packet
    /// at two capture times. The median difference, chained from the first sensor.
    private func estimateClocks(_ copies: [Copy]) {
        var diffs: [String: [String: [Int64]]] = [:]
        var bySeq: [String: [Copy]] = [:]
        for k in copies { if let s = k.seq { bySeq["\(k.client) \(k.server) \(s)", default: []].append(k) } }
        for (_, g) in bySeq where g.count > 1 {
            for a in g {
                for b in g where files[a.file].sensor != files[b.file].sensor {
                    diffs[files[a.file].sensor, default: [:]][files[b.file].sensor, default: []].append(a.first &- b.first)
                }
            }
        }
        guard let reference = files.first?.sensor else { return }
        clockOffsets = [reference: 0]
        var queue = [reference]
        while !queue.isEmpty {
            let s = queue.removeFirst()
            for (other, ds) in diffs[s] ?? [:] where clockOffsets[other] == nil {
                let sorted = ds.sorted()
                // other's time + (s's time − other's time) = s's time; s is on the reference clock.
                clockOffsets[other] = clockOffsets[s]! &+ sorted[sorted.count / 2]
                queue.append(other)
            }
        }
    }

    private func eventKind(_ x: Fact, file: Int, line: Int) throws -> XMPPEventKind {
        func bad(_ why: String) -> FactError { FactError("\(files[file].name):\(files[file].firstLine + line): \(why)") }
        switch x.kind {
        case "header":
            guard let xml = x.xml, let h = FactXML.parseHeader(xml, hadXMLDeclaration: x.xml_declaration ?? false, declaredEncoding: x.encoding) else {
                throw bad("a stream header that does not parse")
            }
            return .streamOpened(h)
        case "element":
            guard let xml = x.xml else { throw bad("an element event without its XML") }
            let s = SerializedElement(xml: xml, context: (x.ns ?? []).map { NamespaceDeclaration(prefix: $0.prefix, uri: $0.uri) },
                                      truncated: x.truncated ?? [])
            guard let el = FactXML.parseElement(s) else { throw bad("an element that does not parse as one XML element") }
            return .element(el)
        case "stream-closed": return .streamClosed
        case "restricted":
            switch x.restricted {
            case "comment": return .restricted(.comment)
            case "pi": return .restricted(.processingInstruction(target: x.name ?? ""))
            case "doctype": return .restricted(.doctype(name: x.name ?? ""))
            case "entity": return .restricted(.entityReference(name: x.name ?? ""))
            case "encoding": return .restricted(.nonUTF8Encoding(declared: x.name ?? ""))
            case "invalid-utf8": return .restricted(.invalidUTF8)
            default: throw bad("unknown restricted XML '\(x.restricted ?? "")'")
            }
        case "not-well-formed": return .notWellFormed(code: x.code ?? 0, reason: x.reason ?? "", offset: x.offset ?? 0)
        case "data-after-close": return .dataAfterClose
        case "tls-started": return .tlsStarted(looksLikeTLS: x.looks_like_tls ?? false)
        case "picked-up": return .pickedUp
        case "bytes-lost": return .bytesLost(length: x.length ?? 0)
        default: throw bad("unknown event kind '\(x.kind ?? "")'")
        }
    }
}
