import S2Dialback
import S2Model
import S2XMPP

/// Runs the dialback model and every enabled rule over the XMPP events of all connections.
public final class Analyzer {
    public let model: DialbackModel
    public let context: RuleContext
    public let rules: [Rule]

    public init(configuration: RuleConfiguration = .init(), hosts: [String: Set<String>] = [:]) {
        model = DialbackModel()
        model.configuredHosts = hosts
        context = RuleContext(model: model, configuration: configuration)
        rules = RuleCatalog.makeRules().filter { !configuration.disabled.contains($0.description.id) }
    }

    public var violations: [Violation] { context.violations }

    public func open(id: ConnectionID, client: String, server: String, clientAddress: String, serverAddress: String,
                     input: Int, frame: FrameRef) -> ConnectionModel {
        model.open(id: id, client: client, server: server, clientAddress: clientAddress, serverAddress: serverAddress,
                   input: input, frame: frame)
    }

    public func event(_ e: XMPPEvent, on c: ConnectionModel) {
        advance(to: e.firstFrame.time)
        let db = model.apply(e, on: c)
        context.judgeExpectations(e, c)
        let input = RuleInput.event(e, c, db)
        for r in rules { r.check(input, context) }
    }

    /// A parsing problem on a direction: rules about that direction's content stay careful.
    public func damaged(_ c: ConnectionModel, _ d: Direction) { model.markDamaged(c, d) }

    public func closed(_ c: ConnectionModel, reason: String, frame: FrameRef) {
        advance(to: frame.time)
        model.closed(c, reason: reason, frame: frame)
        context.connectionClosed(c)
        for r in rules { r.check(.closed(c), context) }
        model.release(c)
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
        for r in rules { r.check(.finished, context) }
    }
}
