import S2Capture
import S2Dialback
import S2Facts
import S2Model
import S2Reassembly
import S2Report
import S2Rules
import S2TLS
import S2Wire
import S2XMPP

/// S2TLS implements the XMPP layer's hook for the bytes after `<proceed/>` (S2XMPP does not
/// depend on S2TLS; the engine joins them).
extension TLSSession: TLSRecordSink {}

/// Wires the layers: capture → frame decoding → TCP reassembly → XMPP streams → dialback model
/// and rules → report. Used by the CLI and the tests alike.
public final class Engine: ReassemblySink {
    public let configuration: EngineConfiguration
    /// The rules judged from one connection alone, beside its parser (docs/PIPELINE.md).
    public let connectionRules: Analyzer
    /// The correlator: cross-connection rules, the dialback exchanges of the report and the
    /// connection records, fed with the facts the connections hand over (the events such rules
    /// read), in capture order.
    public let correlator: Analyzer
    public let report = AnalysisReport()
    /// Called for every violation and anomaly as it is found (live output).
    public var onViolation: ((Violation) -> Void)?
    public var onAnomaly: ((Anomaly) -> Void)?
    /// Called when a dialback exchange gets its outcome (live output).
    public var onDialback: ((DialbackExchange) -> Void)?
    /// Called with every piece of TLS application data decrypted with the key log (connection,
    /// direction, plaintext, the frame that completed its record) before the XMPP layer parses it.
    /// Single-threaded runs only (`threads` == 1).
    public var onDecrypted: ((ConnectionID, Direction, UnsafeRawBufferPointer, FrameRef) -> Void)?
    /// Called when a connection ends, before a live run forgets it.
    /// With the TLS parameters of the connection, if it switched to TLS.
    public var onConnectionClosed: ((ConnectionModel, TLSReportInfo?) -> Void)?
    /// Where the shard's facts go (`analyze --facts`, docs/FACTS.md): everything the correlator is
    /// fed, in the order it is fed, and what the connection rules and the capture layers found.
    public var facts: FactWriter? { get { _facts } set { _facts = newValue } }
    var _facts: FactWriter?
    /// Connections that never carried a byte (part of `silentConnections`).
    private var bytelessConnections = 0
    private var factsClockStarted = false
    /// Called for every finding, listed or past the per-connection bound of its rule (live counters).
    public var onFinding: ((_ rule: String, _ severity: Severity, _ connection: ConnectionID, _ direction: Direction, _ actor: Actor) -> Void)?
    /// Called with the size of every piece of reassembled stream data (live traffic counters).
    public var onStreamBytes: ((ConnectionID, Direction, Int) -> Void)?
    /// Connections seen and dialback exchanges completed, counted even when history is not kept.
    public private(set) var connectionsClosed = 0
    /// Connections closed without any XMPP stream, counted and not kept in the report.
    public private(set) var silentConnections = 0
    public private(set) var outcomes: [String: Int] = [:]
    public private(set) var violationsByRule: [String: Int] = [:]
    public private(set) var violationsBySeverity: [String: Int] = [:]
    /// The run's TLS secrets (`--keylog`, pcapng secrets blocks, and in live runs the lines
    /// the key log gains); nil when none were given.
    public let tlsKeys: TLSKeyStore?

    private let decoder = FrameDecoder()
    private var reassembler: TCPReassembler!
    private var currentInput = 0
    private let started = MonotonicClock.now()
    private var finished = false
    /// Set with `threads` > 1: XML parsing on worker threads.
    private var parallel: ParallelParsing?
    private var lastAdvance = Timestamp(seconds: .min, nanoseconds: 0)
    /// Connections with an XMPP context (parsers and model), for the memory estimate.
    private var xmppConnections = 0
    private var memoryBudgetReported = false
    /// Connections closed early to keep `estimatedStateBytes` within `maxMemory`.
    public private(set) var connectionsEvictedForMemory = 0

    /// Bytes one TCP connection costs in the reassembler's table (object, table and queue slots),
    /// and one connection that carried XMPP on top of that (model, parsers, expat's parser state):
    /// measured with `s2scope analyze` on the header-connections corpus (docs/LIMITS.md), where the
    /// models' `openRetainedBytes` charge each connection ~600 B more for its header (4,000 in all).
    public static let bytesPerTCPConnection = 700
    public static let bytesPerXMPPConnection = 3_400
    /// One live expat parser (a direction inside an element, or past its first element).
    public static let bytesPerParser = 10_000
    /// Live expat parsers of a single-threaded run.
    private let parsers = ParserCount()

    public init(configuration: EngineConfiguration = .init()) {
        self.configuration = configuration
        tlsKeys = configuration.keyLog != nil || configuration.followsKeyLog
            ? TLSKeyStore(keyLog: configuration.keyLog ?? KeyLog(), following: configuration.followsKeyLog, limits: configuration.tlsHold)
            : nil
        connectionRules = Analyzer(configuration: configuration.rules, hosts: configuration.hosts, scopes: [.connection])
        correlator = Analyzer(configuration: configuration.rules, hosts: configuration.hosts, scopes: [.correlation])
        correlator.model.onOutcome = { [unowned self] x in
            self.outcomes[x.outcomeName, default: 0] += 1
            self.onDialback?(x)
        }
        // The per-server hooks (onFinding) see the findings of both stages, listed or not.
        let listed = ListedViolations()
        for a in [connectionRules, correlator] {
            a.context.listed = listed
            a.context.onViolation = { [unowned self] v in self.count(v) }
            a.context.onUnlisted = { [unowned self] rule, severity, c, d, actor in self.onFinding?(rule, severity, c, d, actor) }
            a.context.keepViolations = configuration.retainHistory
            a.model.keepsHistoryOnDisk = configuration.retainHistory
        }
        connectionRules.context.onAnomaly = { [unowned self] a in self.record(a) }
        // The correlator's anomalies come back when its facts are replayed: not facts themselves.
        correlator.context.onAnomaly = { [unowned self] a in self.record(a, correlated: true) }
        let ports = configuration.ports
        reassembler = TCPReassembler(limits: configuration.reassembly, sink: self, isServerPort: { ports.contains($0) })
        if configuration.threads > 1 {
            // Workers only read the key store: it is complete before the first packet (offline).
            precondition(!configuration.followsKeyLog, "a key log that is still being written needs a single-threaded run")
            parallel = ParallelParsing(engine: self, workers: configuration.threads - 1, round: configuration.parallelRound,
                                       depth: configuration.parallelDepth, inlineShare: configuration.parallelInlineShare) { [configuration, tlsKeys] id, sink, count in
                ConnectionParser(connection: id, configuration: configuration, keys: tlsKeys, output: sink, onDecrypted: nil, parserCount: count)
            }
        }
    }

    // MARK: - Inputs

    /// Opens every input first, so that a bad argument fails before any output (exit 2).
    public static func open(paths: [String], filter: String?) throws -> [PcapFileReader] {
        try paths.enumerated().map { try open(path: $0.element, inputIndex: $0.offset, filter: filter) }
    }

    /// Opens one input, checking that its link type is one the engine decodes.
    public static func open(path: String, inputIndex: Int, filter: String?) throws -> PcapFileReader {
        let r = try PcapFileReader(path: path, inputIndex: inputIndex, filter: filter)
        guard LinkType(dlt: r.linkType) != nil else {
            throw CaptureError("\(path): link type \(linkTypeName(r.linkType)) is not supported (supported: EN10MB, LINUX_SLL, LINUX_SLL2, NULL, LOOP, RAW, IPV4, IPV6)")
        }
        return r
    }

    /// Reads one opened input to its end (or to the damage).
    public func read(_ reader: PcapFileReader, progress: ((PcapFileReader) -> Void)? = nil) {
        currentInput = reader.inputIndex
        var n = 0
        let end = reader.read { packet in
            process(packet.bytes, linkType: packet.linkType, frame: packet.frame, wireLength: packet.wireLength)
            n += 1
            if n & 0x3fff == 0 { progress?(reader) }
            return true
        }
        snapLengths[reader.inputIndex] = reader.snapLength
        var summary = InputSummary(path: reader.path, format: reader.format.rawValue, linkType: linkTypeName(reader.linkType),
                                   packets: reader.framesRead, bytes: reader.fileSize ?? reader.bytesRead, truncated: false)
        if case .truncated(let why) = end {
            summary.truncated = true
            summary.note = why
            anomaly(Anomaly(kind: .truncatedCapture, frame: nil,
                            message: "\(reader.path): the capture ends in the middle of a record after frame \(reader.framesRead) (\(why)); everything before was analysed"))
        }
        report.inputs.append(summary)
    }

    // MARK: - Frames

    /// A frame that arrived while a TLS session waited for its secrets.
    struct DeferredFrame {
        var bytes: [UInt8]
        var linkType: Int32
        var frame: FrameRef
        var wireLength: Int
    }

    /// Frames waiting behind a TLS session that waits for its secrets (a followed key log), in
    /// capture order from `deferredHead` on.
    private var deferredFrames: [DeferredFrame] = []
    private var deferredHead = 0
    private var deferredBytes = 0
    private var draining = false

    /// Frames held now because a TLS session waits for its secrets, and their bytes.
    public var deferredFrameCount: Int { deferredFrames.count - deferredHead }

    /// Decodes and analyses one frame.
    ///
    /// While a TLS session waits for secrets a followed key log has not given yet, every later
    /// frame waits too (within the session's wait, `tlsHold`): the records it holds were sent
    /// before them, and a db:verify on one connection must be judged after the db:result it
    /// answers on another. When the wait ends the frames are analysed in capture order.
    public func process(_ bytes: UnsafeRawBufferPointer, linkType: Int32, frame: FrameRef, wireLength: Int) {
        if let keys = tlsKeys, keys.following, keys.hasWaitingSessions || deferredFrameCount > 0 {
            deferredFrames.append(DeferredFrame(bytes: Array(bytes), linkType: linkType, frame: frame, wireLength: wireLength))
            deferredBytes += bytes.count
            keys.expire(now: frame.time)
            // Frames and held records together stay within the hold's byte bound: beyond it the
            // waits are given up (their sessions' records count as not decrypted).
            if deferredBytes + keys.statistics.bytesHeld > keys.limits.totalBytes {
                keys.giveUpAll(why: "the records and frames held for them reached \(keys.limits.totalBytes >> 20) MiB")
            }
            drainDeferredFrames()
            return
        }
        processNow(bytes, linkType: linkType, frame: frame, wireLength: wireLength)
    }

    /// Analyses the frames that waited, in order, until one makes a session wait again.
    private func drainDeferredFrames() {
        guard !draining, let keys = tlsKeys else { return }
        draining = true
        defer { draining = false }
        while deferredHead < deferredFrames.count, !keys.hasWaitingSessions {
            let f = deferredFrames[deferredHead]
            deferredFrames[deferredHead].bytes = []
            deferredHead += 1
            deferredBytes -= f.bytes.count
            f.bytes.withUnsafeBytes { processNow($0, linkType: f.linkType, frame: f.frame, wireLength: f.wireLength) }
        }
        if deferredHead == deferredFrames.count {
            deferredFrames.removeAll(keepingCapacity: deferredFrames.count < 4096)
            deferredHead = 0
        } else if deferredHead > 4096 && deferredHead * 2 > deferredFrames.count {
            deferredFrames.removeFirst(deferredHead)
            deferredHead = 0
        }
    }

    private func processNow(_ bytes: UnsafeRawBufferPointer, linkType: Int32, frame: FrameRef, wireLength: Int) {
        report.statistics.packets += 1
        report.statistics.bytes += Int64(bytes.count)
        if bytes.count < wireLength { longestCutFrame[frame.input] = max(longestCutFrame[frame.input] ?? 0, bytes.count) }
        switch decoder.decode(bytes, linkType: linkType, frame: frame) {
        case .success(var seg):
            guard configuration.ports.contains(seg.source.port) || configuration.ports.contains(seg.destination.port) else { return }
            report.statistics.tcpSegments += 1
            if seg.isSnapTruncated && bytes.count >= wireLength {
                // Captured whole, yet its IP length announces more payload than the frame holds: no
                // snap length cut it, the header lies. The segment is the bytes that are there.
                report.statistics.malformedPackets += 1
                anomaly(Anomaly(kind: .malformedPacket, frame: frame,
                                message: "frame \(frame.number): the IP header announces \(seg.payloadLength) bytes of TCP payload, the frame (captured whole) holds \(seg.payload.count)"))
                seg.payloadLength = seg.payload.count
            }
            reassembler.process(seg)
            if let budget = configuration.maxMemory { checkBudget(budget, frame: frame) }
        case .failure(.malformed(let why)):
            report.statistics.malformedPackets += 1
            // Headers that contradict each other: malformed whether or not the snap length cut the frame.
            anomaly(Anomaly(kind: .malformedPacket, frame: frame, message: "frame \(frame.number) could not be decoded: \(why)"))
        case .failure(.truncated(let why)):
            report.statistics.malformedPackets += 1
            // Cut by the snap length: a limit of the capture, counted with the input's other cut
            // frames. Whole on the wire: its headers lie.
            if bytes.count < wireLength {
                snapCut(frame, connection: nil) { $0.undecodable += 1 }
            } else {
                anomaly(Anomaly(kind: .malformedPacket, frame: frame,
                                message: "frame \(frame.number) could not be decoded: \(why); the frame was captured whole, so its headers announce more than it holds"))
            }
        case .failure:
            break
        }
        if let parallel {
            logAdvance(to: frame.time, parallel)
            parallel.packetDone()
        } else {
            if let tlsKeys, tlsKeys.hasWaitingSessions { tlsKeys.expire(now: frame.time) }
            advanceRules(to: frame.time)
        }
    }

    /// Secrets that arrived during the run (a followed key log): sessions that waited for them
    /// decrypt what they held now, and connections that ended meanwhile are closed.
    public func addSecrets(_ secrets: KeyLog) {
        tlsKeys?.add(secrets)
        drainDeferredFrames()
    }

    /// No more secrets will come: sessions that wait give up and every frame that waited is
    /// analysed (sessions that start to wait meanwhile give up at once).
    private func flushDeferredFrames(why: String) {
        guard let keys = tlsKeys else { return }
        repeat {
            keys.giveUpAll(why: why)
            drainDeferredFrames()
        } while deferredFrameCount > 0 || keys.hasWaitingSessions
    }

    /// Ends the analysis: open connections are flushed and every pending timer judged.
    public func finish() -> AnalysisReport {
        guard !finished else { return report }
        finished = true
        // Sessions still waiting for secrets will not get them: what waited behind them is analysed.
        flushDeferredFrames(why: "the capture ended before they arrived")
        decoder.fragments.flush()
        for f in decoder.fragments.droppedFrames {
            anomaly(Anomaly(kind: .fragmentIncomplete, frame: f, message: "IP fragments starting at frame \(f.number) never completed a datagram"))
        }
        reassembler.finish()
        // Connections closed by the end whose sessions still waited close now.
        flushDeferredFrames(why: "the capture ended before they arrived")
        parallel?.finish()
        reportSnapLengthCuts()
        connectionRules.finish()
        correlator.finish()
        if !configuration.retainHistory {
            for x in correlator.model.exchanges where x.outcome == nil { reportPending(x) }
        }
        report.connections = correlator.model.retireAll()
        report.exchanges = correlator.model.exchanges
        // Both stages judge in capture order; merged, the findings are ordered by their evidence
        // (ties by connection, rule and text: the same report whatever ran where).
        report.violations = (connectionRules.violations + correlator.violations).sorted {
            ($0.frame.input, $0.frame.number, $0.connection, $0.rule, $0.message) < ($1.frame.input, $1.frame.number, $1.connection, $1.rule, $1.message)
        }
        let s = reassembler.statistics
        report.statistics.tcpConnections = s.connectionsOpened
        report.statistics.connectionsWithoutXMPP = silentConnections
        report.statistics.gapBytes = s.gapBytes
        report.statistics.connectionsEvicted = s.connectionsEvicted
        report.statistics.connectionsEvictedForMemory = connectionsEvictedForMemory
        report.statistics.suppressedViolations = connectionRules.context.suppressed.merging(correlator.context.suppressed, uniquingKeysWith: +)
        // Each stage lists its unlisted findings in the order it met them; merged by first frame.
        report.unlistedViolations = (connectionRules.context.unlisted + correlator.context.unlisted).sorted {
            ($0.first.input, $0.first.number, $0.connection, $0.rule) < ($1.first.input, $1.first.number, $1.connection, $1.rule)
        }
        report.notJudged = (connectionRules.context.notJudged + correlator.context.notJudged).sorted {
            ($0.frame.input, $0.frame.number, $0.connection, $0.rule, $0.why) < ($1.frame.input, $1.frame.number, $1.connection, $1.rule, $1.why)
        }
        for (k, v) in connectionRules.context.notJudgedCounts.merging(correlator.context.notJudgedCounts, uniquingKeysWith: +) {
            report.statistics.notJudgedByReason[k.rawValue] = v
        }
        report.statistics.elementsNotJudged = connectionRules.tentativeElements
        report.statistics.midstreamConnections = s.midstreamConnections
        let untracked = connectionRules.model.untrackedRequests
        if untracked > 0 { report.statistics.notJudgedByReason["limit", default: 0] += untracked }
        report.statistics.seconds = MonotonicClock.now() - started
        if let facts { writeShardFindings(facts) }
        return report
    }

    // MARK: - Reassembly sink

    /// The engine's side of one connection: its model (set when the open is applied) and its
    /// parser (run here; with `--threads` it lives on the connection's worker instead).
    final class ConnectionContext: ParseOutputSink {
        /// The connection as its own rules see it, and as the correlator sees it.
        var model: ConnectionModel!
        var correlated: ConnectionModel!
        var parser: ConnectionParser!
        var summary: ParseSummary?
        /// Whether each direction's first bytes were handed to the parser.
        var begun = PerDirection(repeating: false)
        /// Holes per direction, and those that lie wholly in bytes the snap length cut off.
        var gaps = PerDirection(repeating: 0)
        var snapLengthGaps = PerDirection(repeating: 0)
        let id: ConnectionID
        let worker: Int
        unowned let engine: Engine
        init(engine: Engine, id: ConnectionID, worker: Int) {
            self.engine = engine
            self.id = id
            self.worker = worker
        }
        func parsed(_ output: ParseOutput) { engine.apply(output, to: self) }
    }

    struct OpenInfo {
        var id: ConnectionID
        var client: Endpoint
        var server: Endpoint
        var frame: FrameRef
        var handshakeSeen: Bool
        var firstSequence: PerDirection<UInt32?>
    }

    struct CloseInfo {
        var id: ConnectionID
        var end: ConnectionEnd
        var lastFrame: FrameRef

        init(_ c: TCPConnection) {
            id = c.id
            lastFrame = c.lastFrame
            switch c.closeReason ?? .open {
            case .fin: end = .fin
            case .rst: end = .rst
            // An idle timeout or an eviction is the analyzer's decision, never a close on the wire.
            case .timeout, .evicted: end = .unwatched(at: c.closedAt ?? c.lastFrame.time)
            case .open, .reused: end = .captureEnded(fin: PerDirection(c.finSeen(.clientToServer), c.finSeen(.serverToClient)))
            }
        }
    }

    /// Nothing is allocated for a connection until it carries bytes: SYN floods and port scans
    /// cost a reassembler entry each, not an XMPP parser pair and a model.
    public func connectionOpened(_ c: TCPConnection) {}

    private func context(for c: TCPConnection) -> ConnectionContext {
        // Only this engine sets `context`, always to a ConnectionContext: skip the dynamic cast.
        if let any = c.context { return unsafeDowncast(any, to: ConnectionContext.self) }
        let ctx = ConnectionContext(engine: self, id: c.id, worker: parallel?.worker(for: c.id) ?? 0)
        xmppConnections += 1
        // With workers, the connection's worker makes its parser (on its own thread).
        if parallel == nil {
            ctx.parser = ConnectionParser(connection: c.id, configuration: configuration, keys: tlsKeys, output: ctx, onDecrypted: onDecrypted,
                                          parserCount: parsers)
            ctx.parser.onTLSWaitEnded = { [unowned self, unowned ctx] in self.tlsWaitEnded(ctx) }
        }
        let info = OpenInfo(id: c.id, client: c.client, server: c.server, frame: c.firstFrame, handshakeSeen: c.sawHandshake,
                            firstSequence: PerDirection(c.firstSequence(.clientToServer), c.firstSequence(.serverToClient)))
        if let parallel { parallel.step(.open(ctx, info)) } else { open(ctx, info) }
        c.context = ctx
        return ctx
    }

    func open(_ ctx: ConnectionContext, _ info: OpenInfo) {
        facts?.open(info.id, client: info.client.description, server: info.server.description,
                    clientAddress: info.client.address.description, serverAddress: info.server.address.description,
                    frame: info.frame, handshake: info.handshakeSeen, firstSequence: info.firstSequence, now: correlator.context.now)
        for a in [connectionRules, correlator] {
            let m = a.open(id: info.id, client: info.client.description, server: info.server.description,
                           clientAddress: info.client.address.description, serverAddress: info.server.address.description,
                           input: info.frame.input, frame: info.frame)
            if !info.handshakeSeen { m.beganBeforeCapture() }
            if a === correlator { ctx.correlated = m } else { ctx.model = m }
        }
    }

    /// One piece of a connection's parse output, applied to the model and the rules.
    func apply(_ output: ParseOutput, to ctx: ConnectionContext) {
        switch output {
        case .event(let e):
            connectionRules.event(e, on: ctx.model)
            facts?.event(e, on: ctx.id, now: correlator.context.now)
            correlator.event(e, on: ctx.correlated)
        case .anomaly(let a):
            if a.kind == .xmlDesync, let d = a.direction {
                connectionRules.damaged(ctx.model, d)
                facts?.damaged(ctx.id, d, now: correlator.context.now)
                correlator.damaged(ctx.correlated, d)
                // After holes that only the snap length made, resynchronising is expected: counted with the cut frames.
                if ctx.gaps[d] > 0, ctx.gaps[d] == ctx.snapLengthGaps[d], !ctx.model.pickedUp[d], let f = a.frame {
                    snapCut(f, connection: ctx.id) { $0.desyncs += 1 }
                    return
                }
            }
            record(a)
        case .closed(let summary):
            ctx.summary = summary
        }
    }

    public func streamData(_ c: TCPConnection, _ d: Direction, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef) {
        let ctx = context(for: c)
        onStreamBytes?(c.id, d, bytes.count)
        if !ctx.begun[d] {
            ctx.begun[d] = true
            if !c.streamStartSeen(d) {
                if let parallel { parallel.midstream(ctx, d) } else { ctx.parser.startsMidstream(d) }
            }
        }
        let park = xmppConnections > configuration.parkIdleParsersAbove
        if let parallel {
            parallel.data(ctx, d, bytes, at: offset, frame: frame, parksWhenIdle: park)
        } else {
            ctx.parser.feed(d, bytes, at: offset, frame: frame, parksWhenIdle: park)
        }
    }

    public func streamGap(_ c: TCPConnection, _ d: Direction, at offset: UInt64, length: UInt64, frame: FrameRef) {
        let ctx = context(for: c)
        ctx.gaps[d] += 1
        if let parallel {
            parallel.gap(ctx, d, at: offset, length: length, frame: frame)
        } else {
            ctx.parser.gap(d, at: offset, length: length, frame: frame)
        }
    }

    public func snapLengthCut(_ c: TCPConnection, _ d: Direction, frame: FrameRef, missing: UInt64, gap: Bool) {
        if gap {
            if let any = c.context { unsafeDowncast(any, to: ConnectionContext.self).snapLengthGaps[d] += 1 }
            snapCut(frame, connection: c.id) {
                $0.gaps += 1
                $0.gapBytes += missing
            }
        } else {
            snapCut(frame, connection: c.id) {
                $0.frames += 1
                $0.missingBytes += missing
            }
        }
    }

    // MARK: - Snap length

    /// What the snap length cut in one input: reported as one anomaly (`finish`) instead of one
    /// per frame, per hole and per resynchronisation.
    struct SnapLengthCuts {
        var frames = 0
        var missingBytes: UInt64 = 0
        /// Frames whose TCP/IP headers were cut (not decoded at all).
        var undecodable = 0
        var gaps = 0
        var gapBytes: UInt64 = 0
        var desyncs = 0
        var first: FrameRef?
        var connections = Set<ConnectionID>()
    }

    private var snapLengthCuts: [Int: SnapLengthCuts] = [:]
    private var snapLengths: [Int: Int] = [:]
    /// Per input, the most bytes kept of a frame that was cut (the snap length in effect, when
    /// the file's header does not say).
    private var longestCutFrame: [Int: Int] = [:]

    private func snapCut(_ frame: FrameRef, connection: ConnectionID?, _ update: (inout SnapLengthCuts) -> Void) {
        var cuts = snapLengthCuts[frame.input] ?? SnapLengthCuts()
        if cuts.first.map({ frame.number < $0.number }) ?? true { cuts.first = frame }
        if let connection, cuts.connections.count < 10_000 { cuts.connections.insert(connection) }
        update(&cuts)
        snapLengthCuts[frame.input] = cuts
    }

    /// One anomaly per input whose frames the snap length cut: the cause, the fix, and what it
    /// cost. The holes and resynchronisations it explains are counted in it, not listed.
    private func reportSnapLengthCuts() {
        var summaries: [Anomaly] = []
        for (input, cuts) in snapLengthCuts.sorted(by: { $0.key < $1.key }) where cuts.frames + cuts.undecodable > 0 {
            let cut = cuts.frames + cuts.undecodable
            let total = input < report.inputs.count ? " of \(report.inputs[input].packets)" : ""
            let declared = snapLengths[input].flatMap { $0 > 0 && $0 < 262_144 ? $0 : nil }
            let snap = declared.map { " (\($0) bytes)" } ?? longestCutFrame[input].map { " (frames kept at most \($0) bytes)" } ?? ""
            var m = "the capture's snap length\(snap) cut \(cut)\(total) frames short: \(cuts.missingBytes) bytes of TCP payload"
            m += cuts.connections.count == 1 ? " on 1 connection" : " on \(cuts.connections.count) connections"
            m += " were never captured"
            if cuts.undecodable > 0 { m += ", and \(cuts.undecodable) frame\(cuts.undecodable == 1 ? "" : "s") lost part of the TCP/IP headers and could not be decoded" }
            m += ". They are not losses: the \(cuts.gaps) hole\(cuts.gaps == 1 ? "" : "s") this left in the streams (\(cuts.gapBytes) bytes)"
            m += " and the \(cuts.desyncs) XML resynchronisation\(cuts.desyncs == 1 ? "" : "s") after them are counted here, not listed."
            m += " What those bytes carried was not analysed, so the rules saw only part of these streams."
            m += " Capture whole packets: tcpdump -s 0 (or -s 65535; dumpcap and Wireshark capture whole packets unless told otherwise)."
            summaries.append(Anomaly(kind: .truncatedPacket, connection: cuts.connections.count == 1 ? cuts.connections.first : nil,
                                     frame: cuts.first, bytes: cuts.missingBytes, message: m))
        }
        for a in summaries {
            report.statistics.anomaliesByKind[a.kind.rawValue, default: 0] += 1
            onAnomaly?(a)
        }
        // First in the list: it explains much of what follows.
        if configuration.retainHistory { report.anomalies.insert(contentsOf: summaries, at: 0) }
    }

    public func connectionClosed(_ c: TCPConnection) {
        guard let any = c.context else {
            silentConnections += 1  // never carried a byte
            bytelessConnections += 1
            connectionsClosed += 1
            return
        }
        let ctx = unsafeDowncast(any, to: ConnectionContext.self)
        c.context = nil
        xmppConnections -= 1
        let info = CloseInfo(c)
        if let parallel {
            parallel.close(ctx, info)
        } else if ctx.parser.tls.isWaitingForSecrets {
            // A short connection (a verify-only one lasts milliseconds) can end before the server
            // wrote its secrets: it closes once they arrive or the wait is given up.
            waitingToClose[ObjectIdentifier(ctx)] = (ctx, info)
        } else {
            ctx.parser.finish()
            closeModel(ctx, info)
        }
    }

    /// Connections that ended while their TLS session waited for secrets.
    private var waitingToClose: [ObjectIdentifier: (ConnectionContext, CloseInfo)] = [:]

    private func tlsWaitEnded(_ ctx: ConnectionContext) {
        guard let (_, info) = waitingToClose.removeValue(forKey: ObjectIdentifier(ctx)) else { return }
        ctx.parser.finish()
        closeModel(ctx, info)
    }

    /// The model's side of a connection's end, after its parser finished.
    func closeModel(_ ctx: ConnectionContext, _ info: CloseInfo) {
        guard let s = ctx.summary else { preconditionFailure("closing a connection whose parser did not finish") }
        ctx.parser = nil
        let afterProceed = s.bytesAfterTLS
        let tlsReport = s.tls ? Engine.reportInfo(s.tlsInfo, claimed: ctx.model) : nil
        if s.tls {
            let t = s.tlsInfo
            if configuration.retainHistory { report.tlsInfo[info.id] = tlsReport }
            // No stream header before the TLS records: TLS without STARTTLS (direct TLS on this port).
            let midstream = ctx.model.pickedUp.clientToServer || ctx.model.pickedUp.serverToClient
            let how = midstream ? "TLS picked up mid-stream" : ctx.model.streams.isEmpty ? "direct TLS (no STARTTLS)" : "STARTTLS"
            let whereFrom = midstream ? "from the start of the capture" : ctx.model.streams.isEmpty ? "from the first byte" : "after <proceed/>"
            if tlsKeys == nil {
                report.statistics.encryptedBytes = report.statistics.encryptedBytes.saturatingAdd(afterProceed)
                record(Anomaly(kind: .encrypted, connection: info.id, frame: ctx.model.tlsFrame, bytes: afterProceed,
                               message: "\(how): \(afterProceed) bytes \(whereFrom) are encrypted and were not checked (dialback inside TLS is invisible without the session keys; a TLS key log given with --keylog would reveal it)"))
            } else {
                report.statistics.encryptedBytes = report.statistics.encryptedBytes.saturatingAdd(t.undecryptedBytes)
                if t.undecryptedBytes > 0 && !s.tlsReportedProblem {
                    record(Anomaly(kind: .encrypted, connection: info.id, frame: ctx.model.tlsFrame, bytes: t.undecryptedBytes,
                                   message: "STARTTLS: \(t.undecryptedBytes) bytes of TLS records were not decrypted and not checked (\(t.decryptionNote ?? "the key log did not cover them"))"))
                }
            }
        } else {
            report.statistics.encryptedBytes = report.statistics.encryptedBytes.saturatingAdd(afterProceed)
        }
        connectionRules.closed(ctx.model, end: info.end, frame: info.lastFrame)
        facts?.close(info.id, end: info.end, lastFrame: info.lastFrame, shardFindings: connectionRules.hasFindings(on: ctx.model),
                     tls: tlsReport, now: correlator.context.now)
        correlator.closed(ctx.correlated, end: info.end, frame: info.lastFrame)
        connectionsClosed += 1
        onConnectionClosed?(ctx.correlated, tlsReport)
        let foundOn = connectionRules.hasFindings(on: ctx.model) || correlator.hasFindings(on: ctx.correlated)
        // The connection's own stage keeps nothing once it closed: its findings are reported.
        connectionRules.forget(ctx.model)
        if !configuration.retainHistory {
            // Exchanges that never got an answer are reported before they are forgotten.
            for x in correlator.model.exchanges(of: info.id) where x.outcome == nil { reportPending(x) }
            correlator.forget(ctx.correlated)
        } else if !ctx.correlated.carriedXMPP && !foundOn {
            // A connection that never carried an XMPP stream (SYN scans, port probes, floods) is
            // counted but not kept: the report's memory grows with XMPP traffic, not with flows.
            silentConnections += 1
            correlator.discard(ctx.correlated)
        } else {
            correlator.retire(ctx.correlated)
        }
        ctx.model = nil
        ctx.correlated = nil
    }

    /// The end of a facts file: what the connection rules judged and the shard's counters.
    private func writeShardFindings(_ facts: FactWriter) {
        for v in connectionRules.violations { facts.finding(v) }
        for n in connectionRules.context.notJudged { facts.notJudged(n) }
        var s = FactStatistics()
        let r = report.statistics
        s.packets = r.packets
        s.bytes = r.bytes
        s.tcp_segments = r.tcpSegments
        s.tcp_connections = r.tcpConnections
        s.connections_without_stream = bytelessConnections
        s.malformed_packets = r.malformedPackets
        s.encrypted_bytes = r.encryptedBytes
        s.gap_bytes = r.gapBytes
        s.connections_evicted = r.connectionsEvicted
        s.connections_evicted_for_memory = r.connectionsEvictedForMemory
        s.midstream_connections = r.midstreamConnections
        s.elements_not_judged = r.elementsNotJudged
        s.untracked_requests = connectionRules.model.untrackedRequests
        s.suppressed = connectionRules.context.suppressed
        for (k, v) in connectionRules.context.notJudgedCounts { s.not_judged[k.rawValue] = v }
        facts.end(inputs: report.inputs.map(FactInput.init), statistics: s, now: correlator.context.now)
    }

    private var reportedPending: Set<Int> = []

    private func reportPending(_ x: DialbackExchange) {
        guard reportedPending.insert(x.number).inserted else { return }
        outcomes["pending", default: 0] += 1
        onDialback?(x)
    }

    /// The report's view of a connection's TLS parameters; certificates are compared with the
    /// domains its initial stream header claims (`to` for the acceptor's, `from` for the initiator's).
    static func reportInfo(_ t: TLSInfo, claimed model: ConnectionModel?) -> TLSReportInfo {
        var r = TLSReportInfo()
        let initial = model?.streams.first { $0.direction == .clientToServer }?.header
        r.serverCertificate = t.serverCertificateChain.map { certificateReport($0, claimed: initial?.to) }
        r.clientCertificate = t.clientCertificateChain.map { certificateReport($0, claimed: initial?.from) }
        r.version = t.version
        r.clientVersions = t.clientVersions
        r.cipherSuite = t.cipherSuite
        r.sni = t.sni
        r.alpn = t.alpn
        r.alpnOffered = t.alpnOffered
        r.helloRetryRequest = t.helloRetryRequest
        r.clientCertificates = t.clientCertificates
        r.serverCertificates = t.serverCertificates
        r.alerts = t.alerts.map { "\($0.direction.reportName) \($0.levelName) \($0.name)\($0.encrypted ? " (encrypted)" : "") frame \($0.frame.number)" }
        r.records = t.records
        r.decryption = t.decryption.rawValue
        r.decryptionNote = t.decryptionNote
        r.decryptedBytes = t.decryptedBytes
        r.undecryptedBytes = t.undecryptedBytes
        return r
    }

    public static func certificateReport(_ chain: TLSCertificateChain, claimed: String?) -> TLSCertificateReport {
        var c = TLSCertificateReport(frame: chain.frame, chainLength: chain.count)
        c.problems = chain.problems
        if let leaf = chain.leafFacts {
            c.subject = leaf.subject
            c.commonName = leaf.commonName
            c.issuer = leaf.issuer
            c.dnsNames = leaf.dnsNames
            c.srvNames = leaf.srvNames
            c.xmppAddrs = leaf.xmppAddrs
            c.notBefore = Timestamp(seconds: leaf.notBefore, nanoseconds: 0)
            c.notAfter = Timestamp(seconds: leaf.notAfter, nanoseconds: 0)
            c.validAtTime = leaf.isValid(at: chain.frame.time)
            c.selfIssued = leaf.selfIssued
        }
        c.chain = chain.certificates.dropFirst().map { ($0?.subject, $0?.issuer) }
        if let name = claimed, !name.isEmpty { c.expectedName = name }
        if chain.count == 0 {
            c.nameMatch = "no-certificate"  // an empty Certificate message: the side declined to present one
        } else if let name = c.expectedName {
            switch chain.nameMatch(for: name) {
            case .matches(let how):
                c.nameMatch = "matches"
                c.matchedBy = how
            case .mismatch: c.nameMatch = "mismatch"
            case .unknown: c.nameMatch = "unknown"
            }
        }
        return c
    }

    private func count(_ v: Violation) {
        violationsByRule[v.rule, default: 0] += 1
        violationsBySeverity[v.severity.name, default: 0] += 1
        onFinding?(v.rule, v.severity, v.connection, v.direction, v.actor)
        onViolation?(v)
    }

    /// Threads parsing XML beside the calling one (0: all on the calling thread). Fewer than
    /// `configuration.threads − 1` when the system refused to start more.
    public var parsingThreads: Int { parallel?.workerCount ?? 0 }

    /// Connections currently tracked by the reassembler.
    public var activeConnections: Int { reassembler.activeConnections }

    /// The analysis state's size as running counters estimate it (never by walking it): what the
    /// memory budget is checked against. The offline report's history (closed connections' records,
    /// dialback exchanges, findings) is not part of it: it grows with the capture (docs/LIMITS.md).
    ///
    /// With parsing threads the parsers and the rules' state are counted as of the last round
    /// applied; `checkBudget` drains the rounds before it relies on them.
    public var estimatedStateBytes: Int {
        stateBytes(parsers: parallel?.liveParsers ?? parsers.live, rules: connectionRules.pendingStateBytes + correlator.pendingStateBytes)
    }

    private func stateBytes(parsers: Int, rules: Int) -> Int {
        reassembler.activeConnections * Engine.bytesPerTCPConnection + reassembler.ringBytes + reassembler.heldBytes
            + xmppConnections * Engine.bytesPerXMPPConnection + rules + parsers * Engine.bytesPerParser
            // Both models are shown the same events: what they keep of them is one storage, counted
            // once; the correlator's domain caches are its own.
            + connectionRules.model.openRetainedBytes + correlator.model.openDomainCacheBytes
    }

    /// At most this many bytes of rules' state per byte of XML not yet applied (an expectation,
    /// ~700 B, needs an element of tens of bytes; a pending IQ, ~360 B, one of at least 20).
    private static let maxRuleBytesPerXMLByte = 64
    /// Likewise what the dialback models keep of an element: the event's own storage, charged once
    /// and at most `maxRetainedBytesPerWireByte` per byte, and the entries of the two models' domain
    /// caches, which come from a stanza's addresses (a few bytes per byte of them): four times the
    /// cap is ample.
    private static let maxModelBytesPerXMLByte = 4 * DialbackModel.maxRetainedBytesPerWireByte

    /// The memory budget decides at each packet, on the state after that packet, as one thread
    /// would: which connections are closed early must not depend on `--threads`. With parsing
    /// threads the exact state is known only once the rounds in flight are applied, so the rounds
    /// are drained (and the run is sequential for that packet) only when a bound on what they may
    /// add says the budget may be passed.
    private func checkBudget(_ budget: Int, frame: FrameRef) {
        guard let parallel else {
            if estimatedStateBytes > budget { keepWithin(budget, frame: frame) }
            return
        }
        // Each unapplied step can wake at most one parser of its direction (two counted to be safe),
        // and even a step without bytes (a gap, a close) is allowed one expectation more.
        let bound = stateBytes(parsers: parallel.liveParsers + 2 * parallel.unappliedSteps,
                               rules: connectionRules.pendingStateBytes + correlator.pendingStateBytes
                                   + parallel.unappliedBytes * (Engine.maxRuleBytesPerXMLByte + Engine.maxModelBytesPerXMLByte)
                                   + parallel.unappliedSteps * (RuleContext.bytesPerExpectation + RuleContext.bytesPerDeadline))
        guard bound > budget else { return }
        parallel.flush()
        if estimatedStateBytes > budget { keepWithin(budget, frame: frame) }
    }

    /// Over budget: the least recently active connections are closed early (the reassembler's
    /// eviction, as for the connection cap) until the estimate is 10 % under the budget.
    private func keepWithin(_ budget: Int, frame: FrameRef) {
        if !memoryBudgetReported {
            memoryBudgetReported = true
            anomaly(Anomaly(kind: .limitReached, frame: frame,
                            message: "memory budget reached (--max-memory \(budget >> 20) MiB; analysis state estimated at \(estimatedStateBytes >> 20) MiB): the least recently active connections are closed early and what they awaited is not judged; see the statistics for how many"))
        }
        let target = budget - budget / 10
        while estimatedStateBytes > target, reassembler.evictLeastRecentlyActive(frame: frame) {
            connectionsEvictedForMemory += 1
            // What the close frees (parsers, rules' state) counts before the next decision.
            parallel?.flush()
        }
    }

    /// Capture time moved on without packets (live idle periods): expire flows and timers.
    public func advanceIdle(to t: Timestamp) {
        if let keys = tlsKeys, keys.hasWaitingSessions {
            keys.expire(now: t)
            drainDeferredFrames()
        }
        // Frames still wait behind a session: their connections are not idle, only not read yet.
        guard deferredFrameCount == 0 else { return }
        reassembler.expire(now: t)
        if let parallel {
            // The closes the expiry logged are applied before the timers move on, as in capture order.
            logAdvance(to: t, parallel)
            parallel.flush()
        } else {
            advanceRules(to: t)
        }
    }

    /// The capture lost packets (kernel or interface drops) by capture time `t`: rules that would
    /// judge an absence since then hold back (`DialbackModel.noteLoss`).
    public func noteCaptureLoss(at t: Timestamp) {
        connectionRules.model.noteLoss(at: t)
        correlator.model.noteLoss(at: t)
    }

    /// With parsing threads: everything read so far is judged now. A live sensor calls it after
    /// each batch of packets, so findings do not wait for a parse round to fill.
    public func flushParsing() { parallel?.flush() }

    /// With parsing threads, time moves on as a step of the round, in its place among the packets.
    private func logAdvance(to t: Timestamp, _ parallel: ParallelParsing) {
        guard t > lastAdvance else { return }
        lastAdvance = t
        parallel.step(.advance(t))
    }

    /// Capture time reached `t`: both stages' reaction timers fire.
    func advanceRules(to t: Timestamp) {
        if let facts, !factsClockStarted {
            factsClockStarted = true
            facts.time(t)
        }
        connectionRules.advance(to: t)
        correlator.advance(to: t)
    }

    /// Anomalies from reassembly and decoding; with `--threads` they wait for their turn in
    /// capture order.
    public func anomaly(_ a: Anomaly) {
        if let parallel { parallel.step(.anomaly(a)) } else { record(a) }
    }

    func record(_ a: Anomaly, correlated: Bool = false) {
        if !correlated { facts?.anomaly(a) }
        report.statistics.anomaliesByKind[a.kind.rawValue, default: 0] += 1
        if report.anomalies.count < configuration.maxAnomaliesKept && configuration.retainHistory { report.anomalies.append(a) }
        onAnomaly?(a)
    }
}

/// Wall-clock seconds for run statistics (not used for any verdict).
enum MonotonicClock {
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

#if canImport(Glibc)
import Glibc
#endif
