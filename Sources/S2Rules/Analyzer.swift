import S2Dialback
import S2Model
import S2XMPP

/// Runs the dialback model and the enabled rules of some scopes over the XMPP events it is shown.
/// The engine runs two (docs/PIPELINE.md): one beside the connections (scope `.connection`, a model
/// that relates nothing across connections) and the correlator (scope `.correlation`), which is
/// shown only the events cross-connection rules need.
public final class Analyzer {
    public let model: DialbackModel
    public let context: RuleContext
    public let rules: [Rule]

    private let byInterest: [[Rule]]
    private let pendingIQs: StanzaIQ2?

    public let scopes: Set<RuleScope>

    public init(configuration: RuleConfiguration = .init(), hosts: [String: Set<String>] = [:],
                scopes: Set<RuleScope> = [.connection, .correlation]) {
        self.scopes = scopes
        model = DialbackModel(correlates: scopes.contains(.correlation))
        model.configuredHosts = hosts
        context = RuleContext(model: model, configuration: configuration)
        // Both stages keep the same per-connection bounds: the connection's own stage reports them.
        if scopes.contains(.connection) {
            model.onLimit = { [unowned context] c, frame, message in context.limitReached(c.id, frame: frame, message) }
        }
        let enabled = RuleCatalog.makeRules().filter { !configuration.disabled.contains($0.description.id) && scopes.contains($0.scope) }
        rules = enabled
        let kinds: [RuleInterests] = [.header, .initiatorStanza, .element, .streamEvent, .lifecycle, .acceptorStanza]
        byInterest = kinds.map { k in enabled.filter { $0.interests.contains(k) } }
        pendingIQs = enabled.lazy.compactMap { $0 as? StanzaIQ2 }.first
    }

    private func rules(for e: XMPPEvent, _ el: XMLElement?) -> [Rule] {
        if let el { return byInterest[!el.isStanza ? 2 : e.direction == .clientToServer ? 1 : 5] }
        if case .streamOpened = e.kind { return byInterest[0] }
        return byInterest[3]
    }

    public var violations: [Violation] { context.violations }

    /// Estimated bytes of what rules keep pending (expectations, their deadlines, IQs awaiting an
    /// answer), from counters (docs/LIMITS.md).
    public var pendingStateBytes: Int {
        context.expectationsHeld * RuleContext.bytesPerExpectation + context.deadlinesHeld * RuleContext.bytesPerDeadline
            + (pendingIQs?.pendingCount ?? 0) * StanzaIQ2.bytesPerPending
    }

    public func open(id: ConnectionID, client: String, server: String, clientAddress: String, serverAddress: String,
                     input: Int, frame: FrameRef) -> ConnectionModel {
        model.open(id: id, client: client, server: server, clientAddress: clientAddress, serverAddress: serverAddress,
                   input: input, frame: frame)
    }

    /// Top-level elements no rule judged: the first element after parsing resumed without
    /// context, which may be the child of an element whose start was lost.
    public private(set) var tentativeElements = 0

    public func event(_ e: XMPPEvent, on c: ConnectionModel) {
        advance(to: e.firstFrame.time)
        if e.tentative {
            // Perhaps the child of an element the capture cut: never judged. But it may well be the
            // reaction a rule waits for, or a dialback step an exchange needs (those are never nested).
            tentativeElements += 1
            if case .element(let el) = e.kind, el.namespace == Namespace.dialback || el.namespace == Namespace.streams {
                _ = model.apply(e, on: c)
            }
            context.judgeExpectations(e, c, satisfyOnly: true)
            return
        }
        context.eventSerial += 1
        let db = model.apply(e, on: c)
        if case .bytesLost = e.kind {
            context._lossEvents += 1
            context.bytesLost(c, e.direction)
        }
        context.judgeExpectations(e, c)
        let el: XMLElement?
        if case .element(let x) = e.kind { el = x } else { el = nil }
        let input = RuleInput.event(EventInput(e, c, db, el))
        for r in rules(for: e, el) { r.check(input, context) }
    }

    /// A parsing problem on a direction: rules about that direction's content stay careful.
    public func damaged(_ c: ConnectionModel, _ d: Direction) { model.markDamaged(c, d) }

    public func closed(_ c: ConnectionModel, end: ConnectionEnd, frame: FrameRef) {
        advance(to: frame.time)
        model.closed(c, end: end, frame: frame)
        context.connectionClosed(c)
        for r in byInterest[4] { r.check(.closed(c), context) }
        model.release(c)
    }

    /// Whether any violation was reported on the connection (or is still pending on it).
    public func hasFindings(on c: ConnectionModel) -> Bool { context.hasFindings(on: c.id) }

    /// Keeps a closed connection only as its summary (offline runs).
    public func retire(_ c: ConnectionModel) { model.retire(c) }

    /// Drops a closed connection that carried no XMPP; exchanges and other connections stay.
    public func discard(_ c: ConnectionModel) {
        context.forget(c)
        model.discard(c)
    }

    /// Drops a closed connection from memory (live mode keeps no history).
    public func forget(_ c: ConnectionModel) {
        context.forget(c)
        model.forget(c)
    }

    /// Capture time moved on: expired reaction timers fire.
    public func advance(to t: Timestamp) {
        if t > context.now { context.advance(to: t) }
    }

    public func finish() {
        context.runDeferred(until: nil)
        for r in byInterest[4] { r.check(.finished, context) }
    }
}
