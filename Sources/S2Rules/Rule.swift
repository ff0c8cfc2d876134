import S2Dialback
import S2Model
import S2XMPP

/// The role a violation is charged to, in the report contract's words.
public enum Actor: String, Sendable {
    case originating, receiving, authoritative, initiator, acceptor
}

/// How a rule can be observed on the wire (RULES.md §1, column Obs).
public enum Observability: String, Sendable {
    case oneConnection = "1C", crossConnection = "XC", userKnowledge = "UK", notObservable = "NO"
}

/// Everything a rule says about itself: stable ID, source, default severity, and examples that
/// must make it fire and keep it quiet (the examples are run as tests).
public struct RuleDescription: Sendable {
    public var id: String
    public var title: String
    public var severity: Severity
    public var source: String
    public var observability: Observability
    /// Nil when implemented; otherwise why S2Scope does not check it.
    public var notImplemented: String?
    /// Transcripts (see `Transcript`) on which the rule must fire.
    public var firing: [String]
    /// Transcripts on which the rule must stay quiet.
    public var quiet: [String]

    public init(id: String, title: String, severity: Severity, source: String, observability: Observability = .oneConnection,
                notImplemented: String? = nil, firing: [String] = [], quiet: [String] = []) {
        self.id = id
        self.title = title
        self.severity = severity
        self.source = source
        self.observability = observability
        self.notImplemented = notImplemented
        self.firing = firing
        self.quiet = quiet
    }

    public var isImplemented: Bool { notImplemented == nil }
}

/// A broken rule, with the evidence that shows it.
public struct Violation: Sendable {
    public var rule: String
    public var severity: Severity
    public var connection: ConnectionID
    public var direction: Direction
    public var actor: Actor
    /// The frame that carries the evidence (for a missing reaction: the frame that demanded it).
    public var frame: FrameRef
    public var message: String
    /// The offending XML, or a description of the missing reaction.
    public var evidence: String

    public init(rule: String, severity: Severity, connection: ConnectionID, direction: Direction, actor: Actor,
                frame: FrameRef, message: String, evidence: String) {
        self.rule = rule
        self.severity = severity
        self.connection = connection
        self.direction = direction
        self.actor = actor
        self.frame = frame
        self.message = message
        self.evidence = evidence
    }
}

/// An XMPP event as rules are shown it, after the dialback model applied it. One object per event
/// makes `RuleInput`'s payload a single reference: with the four values as the payload, each of the
/// ~25 rules called per stanza also copied the whole payload out (the optional `DialbackEvent`
/// with it), 3.6 % of the instructions on the 8.7 MB bench capture. The accessors rules use
/// (`element`, `event`, `header`) still retain the references they return.
public final class EventInput {
    public let event: XMPPEvent
    public let connection: ConnectionModel
    /// What the dialback model made of the event.
    public let dialback: DialbackEvent?
    /// The top-level element of an element event, taken out once here (reading it from the event's
    /// kind copies the whole kind enum each time).
    public let element: XMLElement?

    public init(_ event: XMPPEvent, _ connection: ConnectionModel, _ dialback: DialbackEvent?, _ element: XMLElement?) {
        self.event = event
        self.connection = connection
        self.dialback = dialback
        self.element = element
    }
}

/// What rules are shown.
public enum RuleInput {
    /// An XMPP event.
    case event(EventInput)
    /// The TCP connection ended (FIN, RST, timeout, or end of capture).
    case closed(ConnectionModel)
    /// The capture ended; cross-connection rules settle their accounts.
    case finished
}

/// Which inputs a rule looks at. Stanzas are most of the traffic, so only rules that judge
/// stanzas are shown them (the analyzer dispatches by kind instead of asking every rule).
public struct RuleInterests: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// Stream headers.
    public static let header = RuleInterests(rawValue: 1)
    /// `<message/>`, `<presence/>`, `<iq/>` sent by the initiator (most of the traffic).
    public static let initiatorStanza = RuleInterests(rawValue: 2)
    /// Stanzas sent by the acceptor (bidi connections, errors, misbehaving peers).
    public static let acceptorStanza = RuleInterests(rawValue: 32)
    /// Stanzas in either direction.
    public static let stanza: RuleInterests = [.initiatorStanza, .acceptorStanza]
    /// Every other top-level element (dialback, features, errors, TLS, SASL…).
    public static let element = RuleInterests(rawValue: 4)
    /// Stream close, restricted XML, ill-formed XML, TLS start, data after close.
    public static let streamEvent = RuleInterests(rawValue: 8)
    /// Connection closed, capture finished.
    public static let lifecycle = RuleInterests(rawValue: 16)
    public static let allButStanzas: RuleInterests = [.header, .element, .streamEvent, .lifecycle]
    public static let all: RuleInterests = [.header, .stanza, .element, .streamEvent, .lifecycle]
}

/// Where a rule runs in the pipeline (docs/PIPELINE.md).
public enum RuleScope: Sendable {
    /// Judged from one connection's own events and state: runs beside the connection's parser
    /// (a shard), whatever else the capture holds.
    case connection
    /// Needs other connections (verify ↔ result, stream-id and key registries, IQ pairing, what a
    /// server hosts or which profile it follows): runs in the one correlator, on the facts the
    /// connections hand over, in capture order.
    case correlation
}

/// A rule of RULES.md. Implementations keep their own state only for what the model lacks.
public protocol Rule: AnyObject {
    var description: RuleDescription { get }
    /// What the rule needs to see; by default everything except stanzas.
    var interests: RuleInterests { get }
    /// Where the rule runs; by default with its connection.
    var scope: RuleScope { get }
    func check(_ input: RuleInput, _ ctx: RuleContext)
}

extension Rule {
    public var interests: RuleInterests { .allButStanzas }
    public var scope: RuleScope { .connection }
}

extension Direction {
    /// The actor for the sender of `self` on a connection.
    public var senderActor: Actor { self == .clientToServer ? .initiator : .acceptor }
}
