import S2Dialback
import S2Model
import S2XMPP

/// Building blocks the rule examples share (RULES.md transcripts, see `Transcript`).
public enum Example {
    public static let key = "574904085be36e0b24eb9037400643f4f45cf4e3215d998cd4e0101a73e4d282"
    /// Connection 1: a.example (10.0.0.1) opens toward b.example (10.0.0.2), stream id s1.
    public static let openA = """
        C> $HDR to='b.example' from='a.example'>
        S> $HDR from='b.example' to='a.example' id='s1'>
        S> <stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>
        """
    public static let resultA = "C> <db:result from='a.example' to='b.example'>\(key)</db:result>"
    /// Connection 2: b.example verifies the key with a.example's authoritative server.
    public static let verifyB = """
        @2 10.0.0.2 -> 10.0.0.1
        2C> $HDR to='a.example' from='b.example'>
        2S> $HDR from='a.example' to='b.example' id='s2'>
        2S> <stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>
        2C> <db:verify from='b.example' to='a.example' id='s1'>\(key)</db:verify>
        2S> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>
        """
    public static let validA = "S> <db:result from='b.example' to='a.example' type='valid'/>"
    public static let message = "C> <message from='u@a.example' to='v@b.example' id='m1'><body>hi</body></message>"
    public static let closeBoth = """
        C> </stream:stream>
        S> </stream:stream>
        close
        2C> </stream:stream>
        2S> </stream:stream>
        2close
        """
    /// A complete, correct exchange: A validated through a verify on connection 2, a message, clean close.
    public static let clean = [openA, resultA, verifyB, validA, message, closeBoth].joined(separator: "\n")
    /// Connection 1 validated (without the teardown), ready for more steps.
    public static let validated = [openA, resultA, verifyB, validA].joined(separator: "\n")
    /// Connection 1 already open when the capture starts: each direction begins inside a
    /// message, then a presence follows (the first whole element after a pickup is never judged:
    /// it may be a child of the cut one). The header, features and dialback came before.
    public static let midstream = """
        @1 10.0.0.1 -> 10.0.0.2 midstream
        C> ='m0'><body>cut by the start of the capture</body></message>
        C> <presence from='u@a.example/r' to='v@b.example'/>
        S> ' type='chat'><body>cut</body></message>
        S> <presence from='v@b.example/r' to='u@a.example'/>
        """
}

extension RuleInput {
    /// The top-level element of an event, with its event and connection.
    var element: (XMPPEvent, XMLElement, ConnectionModel, DialbackEvent?)? {
        guard case .event(let x) = self, let el = x.element else { return nil }
        return (x.event, el, x.connection, x.dialback)
    }

    /// Any event, with its connection.
    var event: (XMPPEvent, ConnectionModel)? {
        guard case .event(let x) = self else { return nil }
        return (x.event, x.connection)
    }

    var header: (XMPPEvent, StreamHeader, ConnectionModel)? {
        guard case .event(let x) = self, x.element == nil, case .streamOpened(let h) = x.event.kind else { return nil }
        return (x.event, h, x.connection)
    }
}

extension XMLElement {
    var isStreamError: Bool { local == "error" && namespace == Namespace.streams }

    /// The defined condition of a stream error (first child in the xmpp-streams namespace).
    var streamErrorCondition: String? {
        children.first { $0.namespace == Namespace.streamErrors && $0.local != "text" }?.local
    }

    var isDialback: Bool { namespace == Namespace.dialback }
}

extension Direction {
    var sideName: String { self == .clientToServer ? "initiator" : "acceptor" }
}

extension XMLElement {
    /// Whether this is a typed db:result answer from `pair`'s target to its sender.
    func answersResult(_ pair: DomainPair) -> Bool {
        isDialback && local == "result" && self[attribute: "type"] != nil
            && normalizedDomain(self[attribute: "to"] ?? "") == pair.sender
            && normalizedDomain(self[attribute: "from"] ?? "") == pair.target
    }
}

/// Demands a stream error (one of `conditions`) from `reactor` after a violation on `c`.
/// - keepSeverity: severity when the reactor keeps the stream (sends other elements, or nothing in time).
/// - otherSeverity: severity when it answers with another stream error condition (nil: accepted).
func demandStreamError(_ rule: Rule, _ ctx: RuleContext, _ c: ConnectionModel, reactor: Direction, actor: Actor,
                       trigger: FrameRef, conditions: [String], what: String,
                       keepSeverity: Severity? = nil, otherSeverity: Severity? = nil) {
    let wanted = conditions.map { "<\($0)/>" }.joined(separator: " or ")
    let keepMessage = "The \(actor.rawValue) server kept the stream after \(what) instead of answering \(wanted) and closing."
    ctx.expect(rule, on: c, by: reactor, actor: actor, trigger: trigger, within: ctx.configuration.timers.react,
               missing: (keepMessage, "no \(wanted) within \(Int(ctx.configuration.timers.react)) s of frame \(trigger.number)", keepSeverity)) { e in
        guard e.direction == reactor else { return .pending }
        switch e.kind {
        case .element(let el) where el.isStreamError:
            let cond = el.streamErrorCondition ?? "?"
            if conditions.contains(cond) || otherSeverity == nil { return .satisfied }
            return .violated(severity: otherSeverity,
                             message: "The \(actor.rawValue) server answered \(what) with <\(cond)/> instead of \(wanted).",
                             evidence: el.render(), frame: e.firstFrame)
        case .element(let el):
            return .violated(severity: keepSeverity, message: keepMessage, evidence: el.render(), frame: e.firstFrame)
        case .streamClosed:
            if otherSeverity == nil { return .satisfied }
            return .violated(severity: otherSeverity,
                             message: "The \(actor.rawValue) server closed the stream after \(what) without the stream error \(wanted).",
                             evidence: "</stream:stream>", frame: e.firstFrame)
        default:
            return .pending
        }
    }
}
