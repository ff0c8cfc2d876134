import S2Dialback
import S2Model
import S2XMPP

/// Timers of RULES.md §1 (analyzer configuration, not from the specs).
public struct RuleTimers: Sendable {
    /// Time a party has to react to a violation (stream error, close).
    public var react: Double = 10
    /// Time to tear down TCP after the streams closed.
    public var close: Double = 30
    /// Dialback round trip.
    public var dialback: Double = 60
    /// IQ reply.
    public var iq: Double = 60
    public init() {}
}

/// Analysis settings the rules read.
public struct RuleConfiguration: Sendable {
    public var profile: Profile? = nil
    public var timers = RuleTimers()
    public var disabled: Set<String> = []
    /// Dialback secrets per authoritative domain (for DB-AUTH-3).
    public var secrets: [String: String] = [:]
    /// Findings kept per (rule, connection); the rest are counted.
    public var maxPerRuleAndConnection = 5
    /// Findings an offline run lists one by one, both stages together (nil: no bound); the rest
    /// are counted like those past `maxPerRuleAndConnection`. A listed finding holds its message
    /// and evidence in memory (0.3–1.2 KB): a capture of hostile traffic can carry millions.
    public var maxListedViolations: Int? = 100_000
    public init() {}
}

/// How many findings the analyzers of one run listed (shared by its two stages, which judge on one
/// thread in capture order: the same findings are listed whatever the thread count).
public final class ListedViolations {
    public internal(set) var count = 0
    var boundReported = false
    public init() {}
}

/// A rule that had occasion to judge but lacked the evidence (REPORT.md `not_judged`): one
/// record per rule, connection and reason, with the first frame and how many occasions.
public struct NotJudged: Sendable {
    public var rule: String
    public var connection: ConnectionID
    public var frame: FrameRef
    public var why: Unobserved
    public var count: Int

    public init(rule: String, connection: ConnectionID, frame: FrameRef, why: Unobserved, count: Int) {
        self.rule = rule
        self.connection = connection
        self.frame = frame
        self.why = why
        self.count = count
    }
}

/// Findings past `RuleConfiguration.maxPerRuleAndConnection`: not listed, but counted per
/// connection, direction, actor, rule and severity, with the first and last frame, so that the
/// per-server table counts every occasion and charges it to the right party.
public struct UnlistedViolations: Sendable {
    public var rule: String
    public var severity: Severity
    public var connection: ConnectionID
    public var direction: Direction
    public var actor: Actor
    public var count: Int
    public var first: FrameRef
    public var last: FrameRef
}

/// What a later event means for a demanded reaction.
public enum ReactionVerdict {
    case pending
    case satisfied
    /// The reaction came but is wrong (e.g. another stream error condition).
    case violated(severity: Severity?, message: String, evidence: String, frame: FrameRef)
}

/// Why a rule's question about some traffic stays open (REPORT.md `not_judged`).
/// A reaction the spec demands from one side of a connection, with a deadline.
final class Expectation {
    let rule: RuleDescription
    let connection: ConnectionID
    let direction: Direction
    let actor: Actor
    let trigger: FrameRef
    let deadline: Timestamp
    let judge: (XMPPEvent) -> ReactionVerdict
    let missing: (message: String, evidence: String, severity: Severity?)
    let closeIsEnough: Bool
    var done = false
    /// The deadline passed in a capture that lost packets: the reaction may be among lost bytes
    /// not yet declared (a loss shows only when a later packet proves it), so the miss waits until
    /// the reactor's stream is seen to go on without a hole.
    var due = false
    /// Creation order: ties between equal deadlines are settled in it.
    var serial = 0

    init(rule: RuleDescription, connection: ConnectionID, direction: Direction, actor: Actor, trigger: FrameRef,
         deadline: Timestamp, judge: @escaping (XMPPEvent) -> ReactionVerdict,
         missing: (message: String, evidence: String, severity: Severity?), closeIsEnough: Bool) {
        self.rule = rule
        self.connection = connection
        self.direction = direction
        self.actor = actor
        self.trigger = trigger
        self.deadline = deadline
        self.judge = judge
        self.missing = missing
        self.closeIsEnough = closeIsEnough
    }
}

/// What rules report into and read from: the model, the configuration, and the timers.
public final class RuleContext {
    public let model: DialbackModel
    public let configuration: RuleConfiguration
    public private(set) var violations: [Violation] = []
    /// Findings not kept because of `maxPerRuleAndConnection`, by rule.
    public private(set) var suppressed: [String: Int] = [:]
    /// The same findings by connection, direction, actor, rule and severity (offline runs only),
    /// in the order first met.
    public private(set) var unlisted: [UnlistedViolations] = []
    private struct UnlistedKey: Hashable {
        var connection: ConnectionID
        var direction: Direction
        var actor: String
        var rule: String
        var severity: Severity
    }
    private var unlistedIndex: [UnlistedKey: Int] = [:]
    /// Called for each finding not listed (live counters still count it).
    public var onUnlisted: ((_ rule: String, _ severity: Severity, _ connection: ConnectionID, _ direction: Direction, _ actor: Actor) -> Void)?
    /// Called when a rule's bound is reached (one `limit-reached` anomaly; the engine records it).
    public var onAnomaly: ((Anomaly) -> Void)?
    /// Called for each violation as it is judged (live output).
    public var onViolation: ((Violation) -> Void)?
    /// The capture time rules judge at. (State other modules read is stored under `_name` behind
    /// a public getter, here and in the other layers: docs/PIPELINE.md, exclusivity checks.)
    public var now: Timestamp { _now }
    var _now: Timestamp = .zero
    /// Losses (gaps) seen on any connection so far: a cross-connection expectation whose answer
    /// may have been lost compares it with its value when the expectation began.
    public var lossEvents: Int { _lossEvents }
    var _lossEvents: Int = 0
    /// Counts the events the analyzer showed the rules: caches key on it.
    var eventSerial = 0
    /// The verdict of `StanzaAuthorization` on the event `stanzaAuthorizationSerial`.
    var stanzaAuthorization: StanzaAuthorization = .fine
    var stanzaAuthorizationSerial = -1
    /// Keep every violation in `violations` (offline, up to `maxListedViolations`); live runs
    /// only stream them.
    public var keepViolations = true
    /// The run's count of listed findings (the engine gives both stages the same).
    public var listed = ListedViolations()

    private var perKey: [ConnectionID: [String: Int]] = [:]
    private struct NotJudgedKey: Hashable { var rule: String; var connection: ConnectionID; var why: Unobserved }
    private var notJudgedIndex: [NotJudgedKey: Int] = [:]
    /// What could not be judged, in the order first met (at most `maxNotJudgedKept` records;
    /// `notJudgedCounts` counts every occasion).
    public private(set) var notJudged: [NotJudged] = []
    public private(set) var notJudgedCounts: [Unobserved: Int] = [:]
    public var maxNotJudgedKept = 10_000
    /// Called for each new not-judged record (live output).
    public var onNotJudged: ((NotJudged) -> Void)?
    /// Pending expectations per connection (judged against each of its events), at most
    /// `maxExpectationsPerConnection`; settled ones may linger until the next sweep.
    private let pinnedExpectations = PinnedValue<[ConnectionID: [Expectation]]>([:])
    /// Pinned (`PinnedValue`): mutated on the hot path, growing inside the access.
    private var expectations: [ConnectionID: [Expectation]] {
        unsafeAddress { UnsafePointer(pinnedExpectations.pointer) }
        unsafeMutableAddress { pinnedExpectations.pointer }
    }
    /// When each connection has an expectation due (a binary min-heap, one entry per expectation),
    /// so that time passing costs O(log n) per deadline instead of a walk over every connection.
    /// Entries are small: an expectation settled early is freed at once, its entry stays until due.
    private let pinnedDeadlines = PinnedValue<[Due]>([])
    /// Pinned (`PinnedValue`): mutated on the hot path, growing inside the access.
    private var deadlines: [Due] {
        unsafeAddress { UnsafePointer(pinnedDeadlines.pointer) }
        unsafeMutableAddress { pinnedDeadlines.pointer }
    }
    private struct Due {
        var deadline: Timestamp
        var serial: Int
        var connection: ConnectionID
    }
    private var expectationSerial = 0
    /// Expectations in the per-connection lists (the memory estimate).
    public var expectationsHeld: Int { _expectationsHeld }
    var _expectationsHeld: Int = 0
    private var expectationCapReported: Set<ConnectionID> = []

    /// Reactions awaited at once on one connection (docs/LIMITS.md). Each event of the connection is
    /// shown to each of them, so the bound is also the work per event; beyond it a new demand is
    /// not judged (counted), with one `limit-reached` anomaly for the connection.
    public static let maxExpectationsPerConnection = 64
    /// Approximate bytes of one pending expectation (object, closure context, messages).
    public static let bytesPerExpectation = 700
    /// Bytes of one entry of the deadline heap.
    public static let bytesPerDeadline = 32
    public var deadlinesHeld: Int { deadlines.count }

    init(model: DialbackModel, configuration: RuleConfiguration) {
        self.model = model
        self.configuration = configuration
    }

    /// The profile a peer (identified by its address) is judged by.
    public func profile(of address: String) -> Profile {
        if let p = configuration.profile { return p }
        if model.retiredDialbackErrorAddresses.contains(address) { return .xep0220 }
        for c in model.connections {
            let errors = c.usesDialbackErrors
            if (errors.acceptor && c.serverAddress == address) || (errors.initiator && c.clientAddress == address) { return .xep0220 }
        }
        return .either
    }

    /// Evidence is kept to its first 600 characters. `prefix` walks grapheme clusters (~35
    /// instructions a character, most of a long finding's cost): a string of at most 600 UTF-8
    /// bytes has at most 600 characters, and in ASCII without CR (CR LF is one character) each
    /// byte is one.
    static func evidencePrefix(_ evidence: String) -> String {
        let limit = 600
        var e = evidence
        if e.utf8.count <= limit { return e }
        let cut = e.withUTF8 { u -> Int? in
            for b in u[..<(limit + 1)] where b >= 0x80 || b == 0x0d { return nil }
            return limit
        }
        if let cut { return String(decoding: e.utf8.prefix(cut), as: UTF8.self) }
        return String(e.prefix(limit))
    }

    public func report(_ rule: Rule, severity: Severity? = nil, _ c: ConnectionModel, _ d: Direction, actor: Actor,
                       frame: FrameRef, _ message: String, evidence: String) {
        report(rule.description, severity: severity, c.id, d, actor: actor, frame: frame, message, evidence: evidence)
    }

    func report(_ desc: RuleDescription, severity: Severity? = nil, _ c: ConnectionID, _ d: Direction, actor: Actor,
                frame: FrameRef, _ message: String, evidence: String) {
        guard !configuration.disabled.contains(desc.id) else { return }
        let n = perKey[c, default: [:]][desc.id, default: 0]
        perKey[c, default: [:]][desc.id] = n + 1
        let full = keepViolations && configuration.maxListedViolations.map { listed.count >= $0 } ?? false
        if full && !listed.boundReported {
            listed.boundReported = true
            limitReached(c, frame: frame, "\(listed.count) findings listed: the later ones are counted by connection, rule and severity, not listed one by one (--max-findings)")
        }
        if n >= configuration.maxPerRuleAndConnection || full {
            suppressed[desc.id, default: 0] += 1
            let sev = severity ?? desc.severity
            if keepViolations {
                let key = UnlistedKey(connection: c, direction: d, actor: actor.rawValue, rule: desc.id, severity: sev)
                if let i = unlistedIndex[key] {
                    unlisted[i].count += 1
                    unlisted[i].last = frame
                } else {
                    unlistedIndex[key] = unlisted.count
                    unlisted.append(UnlistedViolations(rule: desc.id, severity: sev, connection: c, direction: d, actor: actor,
                                                       count: 1, first: frame, last: frame))
                }
            }
            onUnlisted?(desc.id, sev, c, d, actor)
            return
        }
        let v = Violation(rule: desc.id, severity: severity ?? desc.severity, connection: c, direction: d, actor: actor,
                          frame: frame, message: message, evidence: Self.evidencePrefix(evidence))
        if keepViolations {
            violations.append(v)
            listed.count += 1
        }
        onViolation?(v)
    }

    /// Records that `rule` could not judge on `c` at `frame` because of `why`.
    func skip(_ desc: RuleDescription, _ c: ConnectionID, _ frame: FrameRef, _ why: Unobserved) {
        guard !configuration.disabled.contains(desc.id) else { return }
        notJudgedCounts[why, default: 0] += 1
        let key = NotJudgedKey(rule: desc.id, connection: c, why: why)
        if let i = notJudgedIndex[key] {
            notJudged[i].count += 1
            return
        }
        let record = NotJudged(rule: desc.id, connection: c, frame: frame, why: why, count: 1)
        if notJudged.count < maxNotJudgedKept {
            notJudgedIndex[key] = notJudged.count
            notJudged.append(record)
        }
        onNotJudged?(record)
    }

    /// Whether `c`'s stream and dialback state is known well enough for `rule` to judge an
    /// occasion at `frame` (both directions observed since their headers, nothing hidden by TLS);
    /// when it is not, the occasion is recorded as not judged.
    func canJudge(_ rule: Rule, _ c: ConnectionModel, at frame: FrameRef) -> Bool {
        guard let why = c.unobserved else { return true }
        skip(rule.description, c.id, frame, why)
        return false
    }

    /// Whether direction `d` of `c` was observed since its header (the sender's own state, such
    /// as its header's declarations, is known); records a not-judged occasion otherwise.
    func canJudge(_ rule: Rule, _ c: ConnectionModel, direction d: Direction, at frame: FrameRef) -> Bool {
        if c.complete[d] && !c.hidden { return true }
        skip(rule.description, c.id, frame, c.hidden ? .encrypted : (c.missing[d] ?? .gap))
        return false
    }

    /// Reports that a rule's bound was reached on connection `c`.
    func limitReached(_ c: ConnectionID, frame: FrameRef, _ message: String) {
        onAnomaly?(Anomaly(kind: .limitReached, connection: c, frame: frame, message: message))
    }

    /// Demands a reaction from the sender of direction `by` on `c` within `seconds` of `trigger`.
    /// `judge` sees every later event of the connection; when the deadline passes first (or the
    /// connection ends, unless `closeIsEnough`) the `missing` finding is reported.
    func expect(_ rule: Rule, on c: ConnectionModel, by reactor: Direction, actor: Actor, trigger: FrameRef, within seconds: Double,
                closeIsEnough: Bool = true, missing: (message: String, evidence: String, severity: Severity?),
                judge: @escaping (XMPPEvent) -> ReactionVerdict) {
        guard !configuration.disabled.contains(rule.description.id) else { return }
        if expectations[c.id]?.count ?? 0 >= Self.maxExpectationsPerConnection {
            sweep(c.id)
            if expectations[c.id]?.count ?? 0 >= Self.maxExpectationsPerConnection {
                skip(rule.description, c.id, trigger, .limit)
                if expectationCapReported.insert(c.id).inserted {
                    limitReached(c.id, frame: trigger,
                                 "more than \(Self.maxExpectationsPerConnection) reactions are awaited at once on this connection; further ones are not judged")
                }
                return
            }
        }
        let x = Expectation(rule: rule.description, connection: c.id, direction: reactor, actor: actor, trigger: trigger,
                            deadline: trigger.time.adding(seconds: seconds), judge: judge, missing: missing,
                            closeIsEnough: closeIsEnough)
        expectationSerial += 1
        x.serial = expectationSerial
        expectations[c.id, default: []].append(x)
        _expectationsHeld += 1
        pushDeadline(Due(deadline: x.deadline, serial: x.serial, connection: c.id))
    }

    /// Whether `rule` already awaits a reaction on `c` (a second, later demand would add nothing).
    func isAwaiting(_ rule: Rule, on c: ConnectionModel) -> Bool {
        expectations[c.id]?.contains { !$0.done && $0.rule.id == rule.description.id } ?? false
    }

    // MARK: driven by the analyzer

    private func missed(_ x: Expectation) {
        report(x.rule, severity: x.missing.severity, x.connection, x.direction, actor: x.actor, frame: x.trigger,
               x.missing.message, evidence: x.missing.evidence)
    }

    /// `satisfyOnly`: the event's position in the stream is not trusted (see `XMPPEvent.tentative`):
    /// it may fulfil a demand, never break one.
    func judgeExpectations(_ e: XMPPEvent, _ c: ConnectionModel, satisfyOnly: Bool = false) {
        guard let list = expectations[c.id] else { return }
        var settled = false
        for x in list where !x.done {
            if x.due || e.firstFrame.time > x.deadline {
                // The reactor speaking after its deadline, in order, proves its missing reaction was
                // not lost; an event of the other side proves nothing about the reactor's bytes.
                if e.direction == x.direction {
                    x.done = true
                    settled = true
                    missed(x)
                } else {
                    deadlinePassed(x)
                    settled = settled || x.done
                }
                continue
            }
            switch x.judge(e) {
            case .pending: break
            case .satisfied: x.done = true; settled = true
            case .violated where satisfyOnly: break
            case .violated(let sev, let message, let evidence, let frame):
                x.done = true
                settled = true
                report(x.rule, severity: sev, x.connection, x.direction, actor: x.actor, frame: frame, message, evidence: evidence)
            }
        }
        if settled { sweep(c.id) }
    }

    /// Drops the settled expectations of connection `id` from its list.
    private func sweep(_ id: ConnectionID) {
        guard let list = expectations[id] else { return }
        let rest = list.filter { !$0.done }
        _expectationsHeld -= list.count - rest.count
        expectations[id] = rest.isEmpty ? nil : rest
        if rest.isEmpty { expectationCapReported.remove(id) }
    }

    /// The deadline of `x` passed without its reaction: a miss, unless the connection lost bytes
    /// (a connection that lost some may lose more, declared only later). Decided from the connection
    /// alone, so that the verdict does not depend on what other connections (or threads) saw first.
    private func deadlinePassed(_ x: Expectation) {
        let c = model.connection(x.connection)
        // A connection silent since the trigger, in a capture that lost packets since then, may
        // have reacted in what was lost (its close dropped by a loaded sensor): as after a hole
        // of its own, the reaction is judged only when the connection's end shows it.
        if silentInLoss(x, c) || (c.map({ $0.damaged.clientToServer || $0.damaged.serverToClient }) ?? false) {
            x.due = true
        } else {
            x.done = true
            missed(x)
        }
    }

    private func silentInLoss(_ x: Expectation, _ c: ConnectionModel?) -> Bool {
        (c.map { $0.lastFrame.time <= x.trigger.time } ?? false) && model.lossObserved(since: x.trigger.time)
    }

    func hasFindings(on c: ConnectionID) -> Bool { perKey[c] != nil || expectations[c] != nil }

    /// Forgets the per-connection counters of a connection that is gone (live runs).
    func forget(_ c: ConnectionModel) {
        perKey[c.id] = nil
    }

    /// A connection ended: each reaction still awaited is settled by how it ended. A deadline
    /// that passed while the connection was watched is a miss; a close on the wire by the
    /// reactor satisfies reactions that a close is enough for and misses the others; when the
    /// capture ended or the analyzer stopped watching (idle timeout, eviction by a bound) before
    /// the deadline, nothing is known.
    func connectionClosed(_ c: ConnectionModel) {
        expectationCapReported.remove(c.id)
        guard let list = expectations.removeValue(forKey: c.id) else { return }
        _expectationsHeld -= list.count
        var decided = _now
        if case .unwatched(let at)? = c.end, at > decided { decided = at }
        for x in list where !x.done {
            x.done = true
            if decided > x.deadline {
                // A wire close by the reactor comes after any hole in its stream was declared.
                if (x.due || silentInLoss(x, c)) && !(c.end?.closedOnWire(by: x.direction) ?? false) {
                    skip(x.rule, x.connection, x.trigger, .gap)
                } else {
                    missed(x)
                }
                continue
            }
            switch c.end {
            case .unwatched?, nil:
                skip(x.rule, x.connection, x.trigger, .unwatched)
            case .some(let end):
                if end.closedOnWire(by: x.direction) || end == .rst {
                    if !x.closeIsEnough { missed(x) }
                } else {
                    skip(x.rule, x.connection, x.trigger, .captureEnded)
                }
            }
        }
    }

    /// Bytes of direction `d` of `c` were lost: a reaction awaited from its sender may be among
    /// them, so it is not judged.
    func bytesLost(_ c: ConnectionModel, _ d: Direction) {
        guard let list = expectations[c.id] else { return }
        var settled = false
        for x in list where !x.done && x.direction == d {
            x.done = true
            settled = true
            skip(x.rule, x.connection, x.trigger, .gap)
        }
        if settled { sweep(c.id) }
    }

    /// Judgements postponed until more of the capture was seen, in the order they fall due.
    private var deferred: [(at: Timestamp, run: (RuleContext) -> Void)] = []
    private var deferredHead = 0
    /// The time of the first packet: what happened before it is unknown.
    public var captureStart: Timestamp? { _captureStart }
    var _captureStart: Timestamp?

    /// Runs `body` once capture time passes `seconds` after `t` (or when the capture ends).
    /// A loss is declared only when a later packet proves it (an acknowledgment past the hole,
    /// perhaps on the same connection, perhaps seconds later): judgements that depend on other
    /// connections having lost nothing wait for that.
    ///
    /// `body` is handed the context instead of capturing it: a stored closure that held the
    /// context would keep it, its model and every connection alive after the run (a cycle that
    /// AddressSanitizer's leak check reported for every engine).
    func later(_ seconds: Double, after t: Timestamp, _ body: @escaping (RuleContext) -> Void) {
        let at = t.adding(seconds: seconds)
        if deferredHead == deferred.count { wake = min(wake, at) }
        deferred.append((at, body))
    }

    /// The earliest of the first postponed judgement's time and the first deadline: capture time
    /// up to it fires nothing, and `advance` (every event, both analyzers) returns at once.
    private var wake = Timestamp(seconds: .max, nanoseconds: 0)

    private func updateWake() {
        var w = Timestamp(seconds: .max, nanoseconds: 0)
        if deferredHead < deferred.count { w = deferred[deferredHead].at }
        if let d = deadlines.first, d.deadline < w { w = d.deadline }
        wake = w
    }

    /// Runs every postponed judgement whose time came (all of them when `t` is nil: the end).
    func runDeferred(until t: Timestamp?) {
        while deferredHead < deferred.count, t.map({ $0 > deferred[deferredHead].at }) ?? true {
            let d = deferred[deferredHead]
            deferredHead += 1
            d.run(self)
        }
        // What ran is released: at once when nothing waits (the closures hold the connections and
        // events they judged), else in steps that keep the cost per judgement constant.
        if deferredHead == deferred.count {
            deferred.removeAll(keepingCapacity: true)
            deferredHead = 0
        } else if deferredHead > 256 && deferredHead * 2 > deferred.count {
            deferred.removeFirst(deferredHead)
            deferredHead = 0
        }
        updateWake()
    }

    func advance(to t: Timestamp) {
        _now = t
        if _captureStart == nil { _captureStart = t }
        guard t > wake else { return }
        if deferredHead < deferred.count, t > deferred[deferredHead].at { runDeferred(until: t) }
        while let due = deadlines.first, t > due.deadline {
            popDeadline()
            guard let list = expectations[due.connection] else { continue }
            var settled = false
            for x in list where !x.done && !x.due && t > x.deadline {
                deadlinePassed(x)
                settled = settled || x.done
            }
            if settled { sweep(due.connection) }
        }
        updateWake()
    }

    // MARK: the deadline heap

    private func earlier(_ a: Due, _ b: Due) -> Bool {
        a.deadline < b.deadline || (a.deadline == b.deadline && a.serial < b.serial)
    }

    private func pushDeadline(_ x: Due) {
        if x.deadline < wake { wake = x.deadline }
        deadlines.append(x)
        var i = deadlines.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard earlier(deadlines[i], deadlines[parent]) else { break }
            deadlines.swapAt(i, parent)
            i = parent
        }
    }

    private func popDeadline() {
        let last = deadlines.removeLast()
        guard !deadlines.isEmpty else { return }
        deadlines[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < deadlines.count && earlier(deadlines[l], deadlines[m]) { m = l }
            if r < deadlines.count && earlier(deadlines[r], deadlines[m]) { m = r }
            if m == i { return }
            deadlines.swapAt(i, m)
            i = m
        }
    }
}
