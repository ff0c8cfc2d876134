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
    public init() {}
}

/// What a later event means for a demanded reaction.
public enum ReactionVerdict {
    case pending
    case satisfied
    /// The reaction came but is wrong (e.g. another stream error condition).
    case violated(severity: Severity?, message: String, evidence: String, frame: FrameRef)
}

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
    /// Called for each violation as it is judged (live output).
    public var onViolation: ((Violation) -> Void)?
    public private(set) var now: Timestamp = .zero
    /// Counts the events the analyzer showed the rules: caches key on it.
    var eventSerial = 0
    /// The verdict of `StanzaAuthorization` on the event `stanzaAuthorizationSerial`.
    var stanzaAuthorization: StanzaAuthorization = .fine
    var stanzaAuthorizationSerial = -1
    /// Keep every violation in `violations` (offline); live runs only stream them.
    public var keepViolations = true

    private var perKey: [ConnectionID: [String: Int]] = [:]
    private var expectations: [ConnectionID: [Expectation]] = [:]
    private var expectationCount = 0

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

    public func report(_ rule: Rule, severity: Severity? = nil, _ c: ConnectionModel, _ d: Direction, actor: Actor,
                       frame: FrameRef, _ message: String, evidence: String) {
        report(rule.description, severity: severity, c.id, d, actor: actor, frame: frame, message, evidence: evidence)
    }

    func report(_ desc: RuleDescription, severity: Severity? = nil, _ c: ConnectionID, _ d: Direction, actor: Actor,
                frame: FrameRef, _ message: String, evidence: String) {
        guard !configuration.disabled.contains(desc.id) else { return }
        let n = perKey[c, default: [:]][desc.id, default: 0]
        perKey[c, default: [:]][desc.id] = n + 1
        if n >= configuration.maxPerRuleAndConnection {
            suppressed[desc.id, default: 0] += 1
            return
        }
        let v = Violation(rule: desc.id, severity: severity ?? desc.severity, connection: c, direction: d, actor: actor,
                          frame: frame, message: message, evidence: String(evidence.prefix(600)))
        if keepViolations { violations.append(v) }
        onViolation?(v)
    }

    /// Demands a reaction from the sender of direction `by` on `c` within `seconds` of `trigger`.
    /// `judge` sees every later event of the connection; when the deadline passes first (or the
    /// connection ends, unless `closeIsEnough`) the `missing` finding is reported.
    func expect(_ rule: Rule, on c: ConnectionModel, by reactor: Direction, actor: Actor, trigger: FrameRef, within seconds: Double,
                closeIsEnough: Bool = true, missing: (message: String, evidence: String, severity: Severity?),
                judge: @escaping (XMPPEvent) -> ReactionVerdict) {
        guard !configuration.disabled.contains(rule.description.id) else { return }
        let x = Expectation(rule: rule.description, connection: c.id, direction: reactor, actor: actor, trigger: trigger,
                            deadline: trigger.time.adding(seconds: seconds), judge: judge, missing: missing,
                            closeIsEnough: closeIsEnough)
        expectations[c.id, default: []].append(x)
        expectationCount += 1
        if x.deadline < nextDeadline { nextDeadline = x.deadline }
    }

    // MARK: driven by the analyzer

    private func missed(_ x: Expectation) {
        report(x.rule, severity: x.missing.severity, x.connection, x.direction, actor: x.actor, frame: x.trigger,
               x.missing.message, evidence: x.missing.evidence)
    }

    func judgeExpectations(_ e: XMPPEvent, _ c: ConnectionModel) {
        guard var list = expectations[c.id] else { return }
        for x in list where !x.done {
            if e.firstFrame.time > x.deadline {
                x.done = true
                missed(x)
                continue
            }
            switch x.judge(e) {
            case .pending: break
            case .satisfied: x.done = true
            case .violated(let sev, let message, let evidence, let frame):
                x.done = true
                report(x.rule, severity: sev, x.connection, x.direction, actor: x.actor, frame: frame, message, evidence: evidence)
            }
        }
        list.removeAll { $0.done }
        expectations[c.id] = list.isEmpty ? nil : list
    }

    func hasFindings(on c: ConnectionID) -> Bool { perKey[c] != nil || expectations[c] != nil }

    /// Forgets the per-connection counters of a connection that is gone (live runs).
    func forget(_ c: ConnectionModel) {
        perKey[c.id] = nil
    }

    func connectionClosed(_ c: ConnectionModel) {
        guard let list = expectations.removeValue(forKey: c.id) else { return }
        let endTime = c.closeFrame?.time ?? c.lastFrame.time
        for x in list where !x.done {
            x.done = true
            if endTime <= x.deadline {
                if c.close == "open" { continue }  // the capture ended first: unknown, not a verdict
                if x.closeIsEnough { continue }
            }
            missed(x)
        }
    }

    /// The earliest deadline of any pending expectation: time can move on for free until then.
    private var nextDeadline = Timestamp(seconds: .max, nanoseconds: 0)

    func advance(to t: Timestamp) {
        now = t
        guard expectationCount > 0, t > nextDeadline else { return }
        var remaining = 0
        var earliest = Timestamp(seconds: .max, nanoseconds: 0)
        for (id, list) in expectations {
            var changed = false
            for x in list where !x.done && t > x.deadline {
                x.done = true
                changed = true
                missed(x)
            }
            let rest = changed ? list.filter { !$0.done } : list
            if changed { expectations[id] = rest.isEmpty ? nil : rest }
            remaining += rest.count
            for x in rest where x.deadline < earliest { earliest = x.deadline }
        }
        expectationCount = remaining
        nextDeadline = earliest
    }

}
