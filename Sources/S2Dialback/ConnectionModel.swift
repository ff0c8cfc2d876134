import S2Model
import S2XMPP

/// A (Sender Domain, Target Domain) pair that dialback authorizes, in one direction. Both
/// domains are normalised (RFC 7622 §3.2: domainparts compare case-insensitively), so every
/// comparison of pairs is one.
public struct DomainPair: Hashable, Sendable, CustomStringConvertible {
    public let sender: String
    public let target: String
    public init(sender: String, target: String) {
        self.sender = normalizedDomain(sender)
        self.target = normalizedDomain(target)
    }
    /// Domains already normalised (`jidDomain`, `normalizedDomain`): the stanza rules build a pair
    /// for every stanza from the domains its element has normalised once.
    public init(normalizedSender sender: String, target: String) {
        self.sender = sender
        self.target = target
    }
    public var description: String { "(\(sender) → \(target))" }
}

/// Which rule set a peer is judged by where the sources disagree (RULES.md §1, §4).
public enum Profile: String, Sendable, CaseIterable {
    /// RFC 3920 §8: every dialback failure is a stream error.
    case rfc3920
    /// XEP-0220 1.1.1 on RFC 6120: non-fatal `type='error'` dialback errors.
    case xep0220
    /// Accept either profile's reaction; flag only behaviour wrong under both.
    case either
}

/// One stream header as seen on a connection (for the report's `streams`).
public struct StreamRecord: Sendable {
    public var direction: Direction
    public var header: StreamHeader
    public var frame: FrameRef
    public var closed = false
}

/// How the analyzer saw a connection end.
public enum ConnectionEnd: Sendable, Equatable {
    /// Both sides sent FIN.
    case fin
    /// A side reset it.
    case rst
    /// The capture ended with the connection open; `fin` tells which sides had already sent FIN.
    case captureEnded(fin: PerDirection<Bool>)
    /// The analyzer stopped watching it (idle timeout, eviction under a limit) at `at`: a
    /// decision of the analyzer, not a close on the wire.
    case unwatched(at: Timestamp)

    /// The report contract's word (`fin|rst|timeout|open`).
    public var reportName: String {
        switch self {
        case .fin: "fin"
        case .rst: "rst"
        case .captureEnded: "open"
        case .unwatched: "timeout"
        }
    }

    /// Whether the sender of direction `d` closed TCP on the wire.
    public func closedOnWire(by d: Direction) -> Bool {
        switch self {
        case .fin, .rst: true
        case .captureEnded(let fin): fin[d]
        case .unwatched: false
        }
    }
}

/// Everything S2Scope knows about one TCP connection at the XMPP level: who opened it, the
/// stream headers both ways, features, TLS, and the dialback state — pending requests and
/// the validated domain pairs VP(c) of RULES.md §2 — together with how much of it was observed.
public final class ConnectionModel {
    public let id: ConnectionID
    /// `address:port` of the initiator and the acceptor.
    public let client: String
    public let server: String
    public let clientAddress: String
    public let serverAddress: String
    public let input: Int
    public let firstFrame: FrameRef
    public internal(set) var lastFrame: FrameRef {
        get { tally.lastFrame }
        set { tally.lastFrame = newValue }
    }
    /// What every element updates, kept together: an element is then one exclusive access to the
    /// connection (each is checked at run time, about 150 instructions) instead of one per field.
    struct ElementTally {
        var lastFrame: FrameRef
        var elementsSeen = false
        var elementsSinceHeader = PerDirection(repeating: 0)
        var stanzaCount = PerDirection(repeating: 0)
        var carriedOnlyVerify = true

        /// A top-level element of `d` ended at `frame`; `stanza`: a message, presence or iq in
        /// jabber:server or jabber:client (neither dialback nor stream features).
        mutating func element(_ d: Direction, at frame: FrameRef, stanza: Bool) {
            lastFrame = frame
            elementsSeen = true
            elementsSinceHeader[d] += 1
            if stanza {
                stanzaCount[d] += 1
                carriedOnlyVerify = false
            }
        }
    }
    var tally: ElementTally
    /// How the connection ended (nil while open).
    public internal(set) var end: ConnectionEnd?
    /// `fin`, `rst`, `timeout` or `open` once the connection ended.
    public var close: String? { end?.reportName }
    public internal(set) var closeFrame: FrameRef?

    /// All stream headers in order (restarts included), the first `DialbackModel.maxStreamsPerConnection`.
    public internal(set) var streams: [StreamRecord] = []
    /// Stream headers past that bound, only counted.
    public internal(set) var streamsNotRecorded = 0
    /// Position in `DialbackModel.connections` (removal in O(1)).
    var slot = -1
    /// The latest header per direction.
    public var initialHeader: StreamHeader? { _initialHeader }
    var _initialHeader: StreamHeader? { didSet { headerSeen[.clientToServer] = _initialHeader != nil } }
    public var responseHeader: StreamHeader? { _responseHeader }
    var _responseHeader: StreamHeader? { didSet { headerSeen[.serverToClient] = _responseHeader != nil } }
    /// Whether each header is set, asked for every stanza: even a test for nil copied the header
    /// (its strings and arrays), hundreds of instructions.
    private var headerSeen = PerDirection(false, false)
    public internal(set) var headerFrames = PerDirection<FrameRef?>(repeating: nil)
    /// Top-level elements each direction sent since its latest header.
    public internal(set) var elementsSinceHeader: PerDirection<Int> {
        get { tally.elementsSinceHeader }
        set { tally.elementsSinceHeader = newValue }
    }
    /// The acceptor's latest `<stream:features/>`.
    public internal(set) var features: XMLElement?
    /// Features offered before TLS (for STREAM-FEAT-2 / TLS-3).
    public internal(set) var preTLSFeatures: XMLElement?
    /// The pre-TLS features marked STARTTLS `<required/>`.
    public var startTLSRequired: Bool { _startTLSRequired }
    var _startTLSRequired: Bool = false
    /// Features were seen inside TLS (a decrypted session).
    public internal(set) var featuresInTLS = false
    /// Some features of the acceptor offered dialback, dialback errors, bidi (kept for the
    /// report's profile: `features` holds only the latest).
    public internal(set) var dialbackFeatureSeen = false
    public internal(set) var dialbackErrorsFeatureSeen = false
    public internal(set) var bidiFeatureSeen = false
    /// See `ConnectionFacts.stanzaDomains`.
    public internal(set) var stanzaDomains = PerDirection<[String]>(repeating: [])
    /// The domains of the stanzas' JIDs, per stream direction (`JIDDomainCache`).
    var jidDomains = PerDirection(repeating: JIDDomainCache())

    /// What this connection keeps of what its peers sent (headers and their records, features,
    /// stream errors, stanza domains, the domain caches), estimated when kept (`retainedBytes` of
    /// S2XMPP): the memory budget charges it on top of the flat per-connection figure.
    public var retainedBytes: Int {
        retainedAppended + retainedFeatures + retainedPreTLSFeatures + retainedHeaders.clientToServer + retainedHeaders.serverToClient
            + retainedStreamErrors.clientToServer + retainedStreamErrors.serverToClient
            + jidDomains.clientToServer.retainedBytes + jidDomains.serverToClient.retainedBytes
    }
    /// Stream records and stanza domains: lists that only grow, each capped.
    var retainedAppended = 0
    /// The current headers once records are no longer kept (before that, a record holds each).
    var retainedHeaders = PerDirection(repeating: 0)
    /// `features` once TLS began, and `preTLSFeatures` (before TLS, `features` is that element).
    var retainedFeatures = 0
    var retainedPreTLSFeatures = 0
    var retainedStreamErrors = PerDirection(repeating: 0)
    public var tls: Bool { _tls }
    var _tls: Bool = false
    public var tlsFrame: FrameRef? { _tlsFrame }
    var _tlsFrame: FrameRef?
    /// A stream header arrived after the switch to TLS: the session is being decrypted (key log).
    public var decrypted: Bool { _decrypted }
    var _decrypted: Bool = false
    /// TLS hides what follows: rules that need the content must stay quiet (unknown, not passed).
    public var hidden: Bool { tls && !decrypted }
    public var saslSucceeded: Bool { _saslSucceeded }
    var _saslSucceeded: Bool = false
    /// SASL negotiations on this connection, in order (the first `maxSASLNegotiations`).
    public internal(set) var sasl: [SASLNegotiation] = []
    static let maxSASLNegotiations = 8
    /// The SASL mechanisms the acceptor's latest features offered.
    public internal(set) var offeredMechanisms: [String] = []
    /// The domain SASL authenticated for the initiator (nil: none, or not known because the
    /// `<auth/>` was not seen).
    public internal(set) var saslDomain: String?
    /// Per direction: SASL succeeded and that direction has not sent anything since, so its next
    /// output must be a new stream header (RFC 6120 §6.4.6).
    public internal(set) var saslRestart = PerDirection(repeating: false)
    /// The event being applied is the first of its direction after SASL success.
    public var firstAfterSASLSuccess: Bool { _firstAfterSASLSuccess }
    var _firstAfterSASLSuccess: Bool = false
    public var bidi: Bool { _bidi }
    var _bidi: Bool = false
    public internal(set) var streamClosed = PerDirection(repeating: false)
    public internal(set) var streamClosedFrame = PerDirection<FrameRef?>(repeating: nil)
    /// The first stream error each direction sent.
    public internal(set) var streamError = PerDirection<XMLElement?>(repeating: nil)
    public internal(set) var streamErrorFrame = PerDirection<FrameRef?>(repeating: nil)
    /// Whether each side emitted a `type='error'` dialback element.
    public internal(set) var sentDialbackError = PerDirection(repeating: false)
    /// Untyped db:result requests sent in each direction, awaiting the other side's answer: the
    /// initiator's (classic dialback) and, on a XEP-0288 bidi connection, the acceptor's.
    public internal(set) var pendingResults = PerDirection<[DomainPair: DialbackExchange]>(repeating: [:])
    /// Untyped db:verify requests from the initiator awaiting the acceptor's answer, by (from, to, id).
    public internal(set) var pendingVerifies: [VerifyKey: VerifyRequest] = [:]
    /// VP(c) per direction: the pairs the sender of that direction may send stanzas for — the
    /// initiator's pairs validated by the acceptor's `valid`, and on a bidi connection the
    /// acceptor's pairs validated by the initiator.
    public internal(set) var validated = PerDirection<Set<DomainPair>>(repeating: []) { didSet { validatedVersion &+= 1 } }
    private var validatedVersion = 0
    /// The pair `isValidated` last found, with the direction and the version of `validated` it was
    /// found in: a stream's stanzas repeat a few pairs, and comparing two domains (often the same
    /// strings, from `JIDDomainCache`) costs less than hashing them.
    private var lastValidated: (pair: DomainPair, direction: Direction, version: Int)?
    /// Pairs answered `invalid`, per direction of their requests.
    public var invalidated: PerDirection<Set<DomainPair>> { _invalidated }
    var _invalidated: PerDirection<Set<DomainPair>> = PerDirection<Set<DomainPair>>(repeating: [])
    /// Targets the initiator asked for with db:result on this stream (for DB-RES-5), at most
    /// `DialbackModel.maxTargetsPerConnection`.
    public internal(set) var requestedTargets: Set<String> = []
    /// The latest db:result request named a target not asked for before on this stream.
    public internal(set) var latestRequestAddedTarget = false
    /// A dialback bound of this connection was reached (pending requests, targets, pending
    /// verifies): a reply that matches no tracked request may answer an untracked one, so it is
    /// not taken as unsolicited.
    public internal(set) var dialbackOverflow = false
    /// Ids of the pending db:verify requests by their (from, to), in arrival order (answered ones
    /// leave lazily), for DB-CORR-2.
    var pendingVerifyIDs: [DomainPair: PendingIDs] = [:]
    struct PendingIDs {
        var ids: [String] = []
        var head = 0
        var live = 0
    }

    func addPendingVerifyID(_ key: VerifyKey) {
        let route = DomainPair(sender: key.from, target: key.to)
        var p = pendingVerifyIDs[route] ?? PendingIDs()
        pendingVerifyIDs[route] = nil  // unique: no copy on append
        p.ids.append(key.id)
        p.live += 1
        if p.ids.count - p.head > 2 * p.live + 16 {  // answered ones pile up behind an old pending one
            p.ids = p.ids[p.head...].filter { pendingVerifies[VerifyKey(from: key.from, to: key.to, id: $0)] != nil }
            p.head = 0
        }
        pendingVerifyIDs[route] = p
    }

    func removePendingVerifyID(_ key: VerifyKey) {
        let route = DomainPair(sender: key.from, target: key.to)
        guard let p = pendingVerifyIDs[route] else { return }
        if p.live <= 1 { pendingVerifyIDs[route] = nil } else { pendingVerifyIDs[route]!.live -= 1 }
    }

    /// The id of the earliest db:verify request with this (from, to) still awaiting its answer.
    public func earliestPendingVerifyID(from: String, to: String) -> String? {
        let route = DomainPair(sender: from, target: to)
        guard var p = pendingVerifyIDs[route] else { return nil }
        while p.head < p.ids.count, pendingVerifies[VerifyKey(from: from, to: to, id: p.ids[p.head])] == nil { p.head += 1 }
        if p.head > 64 && p.head * 2 > p.ids.count {
            p.ids.removeFirst(p.head)
            p.head = 0
        }
        pendingVerifyIDs[route] = p
        return p.head < p.ids.count ? p.ids[p.head] : nil
    }
    /// The kinds of top-level elements seen, for DB-RCV-10 (verify-only connections).
    public internal(set) var carriedOnlyVerify: Bool {
        get { tally.carriedOnlyVerify }
        set { tally.carriedOnlyVerify = newValue }
    }
    /// Whether the connection carried XMPP at all (a header, an element, a stream picked up
    /// mid-stream, TLS after STARTTLS or from the first byte): what the report lists.
    public var carriedXMPP: Bool { !streams.isEmpty || tls || pickedUp.clientToServer || pickedUp.serverToClient || elementsSeen }
    public internal(set) var elementsSeen: Bool {
        get { tally.elementsSeen }
        set { tally.elementsSeen = newValue }
    }
    public internal(set) var stanzaCount: PerDirection<Int> {
        get { tally.stanzaCount }
        set { tally.stanzaCount = newValue }
    }
    /// Whether a direction lost bytes or parsing skipped some (gap, desync) at any point.
    public var damaged: PerDirection<Bool> { _damaged }
    var _damaged: PerDirection<Bool> = PerDirection(repeating: false)
    /// Whether the capture holds the TCP handshake: then nothing either side sent before the
    /// first bytes seen exists (without it, the acceptor may have sent its header unseen).
    public var handshakeSeen = true
    /// The capture holds no TCP handshake: neither direction is known from its start until its
    /// own stream header shows up. Marked at open, not when a direction's first bytes arrive: the
    /// acceptor's `valid` may be read before the first byte of an initiator whose request (and
    /// SYN) the sensor dropped, and must not look unsolicited then.
    public func beganBeforeCapture() {
        handshakeSeen = false
        for d in Direction.allCases where !pickedUp[d] {
            _complete[d] = false
            _missing[d] = .midstream
        }
    }

    /// Whether the capture picked a direction up after its stream began.
    public internal(set) var pickedUp = PerDirection(repeating: false)
    /// Whether everything a direction sent since its latest stream header was observed: false
    /// after a mid-stream pickup or a loss, true again at its next header. What the model keeps
    /// (headers, features, pending requests, validated pairs, bidi, SASL) is complete only when
    /// both directions are.
    public var complete: PerDirection<Bool> { _complete }
    var _complete: PerDirection<Bool> = PerDirection(repeating: true)
    /// Why the latest incompleteness arose, per direction.
    public var missing: PerDirection<Unobserved?> { _missing }
    var _missing: PerDirection<Unobserved?> = PerDirection<Unobserved?>(repeating: nil)

    init(id: ConnectionID, client: String, server: String, clientAddress: String, serverAddress: String,
         input: Int, frame: FrameRef) {
        self.id = id
        self.client = client
        self.server = server
        self.clientAddress = clientAddress
        self.serverAddress = serverAddress
        self.input = input
        firstFrame = frame
        tally = ElementTally(lastFrame: frame)
    }

    public func header(_ d: Direction) -> StreamHeader? { d == .clientToServer ? initialHeader : responseHeader }
    /// Whether `d`'s stream header was seen.
    public func hasHeader(_ d: Direction) -> Bool { headerSeen[d] }

    /// The acceptor's stream ID — what dialback keys on this connection are bound to.
    public var streamID: String? { responseHeader?.id }

    /// Address of the party that sends in direction `d`.
    public func address(of d: Direction) -> String { d == .clientToServer ? clientAddress : serverAddress }

    /// Whether the connection's stream and dialback state is fully known: both directions were
    /// observed since their headers and TLS hides nothing.
    public var stateKnown: Bool { complete.clientToServer && complete.serverToClient && !hidden }

    /// Why the state is not fully known (nil when it is): what a rule that needs it reports
    /// under `not_judged`.
    public var unobserved: Unobserved? {
        if hidden { return .encrypted }
        // Asked for every stanza: no array of the two reasons.
        let initiator = missing.clientToServer, acceptor = missing.serverToClient
        if initiator == .midstream || acceptor == .midstream { return .midstream }
        return initiator ?? acceptor
    }

    /// True when the acceptor advertised `<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>`.
    public var acceptorAdvertisedDialbackErrors: Bool {
        guard let f = features ?? preTLSFeatures, let db = f.child("dialback", namespace: Namespace.dialbackFeature) else { return false }
        return db.child("errors") != nil
    }

    public var acceptorAdvertisedDialback: Bool {
        (responseHeader?.prefixes(for: Namespace.dialback).isEmpty == false)
            || (features ?? preTLSFeatures)?.child("dialback", namespace: Namespace.dialbackFeature) != nil
    }

    /// Whether `pair` is in VP(c) for direction `d`: `validated[d].contains(pair)`.
    public func isValidated(_ pair: DomainPair, _ d: Direction = .clientToServer) -> Bool {
        if let l = lastValidated, l.version == validatedVersion, l.direction == d, l.pair == pair { return true }
        guard validated[d].contains(pair) else { return false }
        lastValidated = (pair, d, validatedVersion)
        return true
    }

    /// Whether the sender of direction `d` authenticated `domain` on this connection: by dialback,
    /// or, for the initiator, as the identity SASL authenticated (RFC 6120 §6.4.6, XEP-0178) — not
    /// whatever a later stream header claims. A SASL success whose `<auth/>` was not seen validates
    /// whatever it was for: that cannot be judged. `domain` is normalised (see `normalizedDomain`).
    public func hasValidatedSender(_ domain: String, _ d: Direction = .clientToServer) -> Bool {
        if d == .clientToServer, saslSucceeded, saslDomain.map(normalizedDomain) ?? domain == domain { return true }
        return validated[d].contains { $0.sender == domain }
    }

    /// Domains the sender of direction `d` authenticated on this connection (dialback or SASL).
    public func validatedSenders(_ d: Direction = .clientToServer) -> Set<String> {
        var s = Set(validated[d].map(\.sender))
        if d == .clientToServer, saslSucceeded, let a = saslDomain { s.insert(normalizedDomain(a)) }
        return s
    }
}

/// Key of a db:verify request: the request's (from, to, id).
public struct VerifyKey: Hashable, Sendable {
    public let from: String
    public let to: String
    public let id: String
    /// `from` and `to` are normalised domains (see `normalizedDomain`).
    public init(from: String, to: String, id: String) {
        self.from = normalizedDomain(from)
        self.to = normalizedDomain(to)
        self.id = id
    }
}

/// A db:verify request waiting for the authoritative server's answer.
public struct VerifyRequest: Sendable {
    public var key: VerifyKey
    /// The key text the request carried.
    public var keyText: String
    public var frame: FrameRef
    /// The direction the request travelled (initiator → acceptor, or back on a bidi connection).
    public var direction: Direction = .clientToServer
    public var exchange: DialbackExchange?
}

/// One stream header as the reports show it.
public struct StreamSummary: Sendable {
    public var direction: Direction
    public var to: String?
    public var from: String?
    /// The stream ID attribute.
    public var id: String?
    public var version: String?
    public var closed: Bool
}

/// What outlives a connection: the fields of the report, and what the cross-connection rules
/// still ask about a closed connection. A few hundred bytes, where the live model with its
/// headers, features and pending requests takes kilobytes: closed connections are kept in
/// this form, so that an offline run's memory grows slowly with the capture.
public struct ConnectionSummary: Sendable {
    public var id: ConnectionID
    public var input: Int
    /// `address:port` of the initiator and the acceptor.
    public var client: String
    public var server: String
    public var clientAddress: String
    public var serverAddress: String
    public var firstFrame: FrameRef
    public var lastFrame: FrameRef
    public var closeFrame: FrameRef?
    public var close: String?
    public var tls: Bool
    public var streams: [StreamSummary]
    /// TLS hid the content (no key log).
    public var hidden: Bool
    /// The initiator's direction was damaged (gap, desync).
    public var initiatorDamaged: Bool
    /// The acceptor's latest stream ID and the initiator's latest `to`.
    public var streamID: String?
    public var initialTo: String?
    /// The directions the capture picked up after their streams began.
    public var pickedUp = PerDirection(repeating: false)
    /// The SASL negotiations of the connection.
    public var sasl: [SASLNegotiation] = []
    /// What the acceptor offered and what each side did, for the per-server profile.
    public var facts = ConnectionFacts()
}

/// What a connection showed about the behaviour of its two servers: the acceptor's stream
/// features (before TLS and inside it), bidi, dialback errors sent, and the stanzas each side
/// sent. Plain observations for the report's per-server profile; none is a verdict.
public struct ConnectionFacts: Sendable, Equatable {
    /// The acceptor's `<stream:features/>` were seen before TLS, and inside a decrypted TLS session.
    public var featuresBeforeTLS = false
    public var featuresInTLS = false
    /// The pre-TLS features offered STARTTLS, and marked it `<required/>`.
    public var startTLSOffered = false
    public var startTLSRequired = false
    /// Some features offered XEP-0220 dialback (`urn:xmpp:features:dialback`), with `<errors/>`.
    public var dialbackOffered = false
    public var dialbackErrorsOffered = false
    /// Some features offered XEP-0288 bidi; the initiator asked for it.
    public var bidiOffered = false
    public var bidiRequested = false
    /// The SASL mechanisms of the latest features.
    public var mechanisms: [String] = []
    /// Each side sent a `type='error'` dialback element.
    public var sentDialbackError = PerDirection(repeating: false)
    /// Stanzas (`message`, `presence`, `iq`) each side sent.
    public var stanzas = PerDirection(repeating: 0)
    /// Domains of the `from` of stanzas a side sent while no stream header of its was seen (a
    /// connection picked up mid-stream), the first `maxStanzaDomains`: the only hint of who it is.
    public var stanzaDomains = PerDirection<[String]>(repeating: [])
    public static let maxStanzaDomains = 8

    public init() {}
}

extension ConnectionModel {
    public var summary: ConnectionSummary {
        ConnectionSummary(id: id, input: input, client: client, server: server, clientAddress: clientAddress,
                          serverAddress: serverAddress, firstFrame: firstFrame, lastFrame: lastFrame, closeFrame: closeFrame,
                          close: close, tls: tls,
                          streams: streams.map { StreamSummary(direction: $0.direction, to: $0.header.to, from: $0.header.from,
                                                               id: $0.header.id, version: $0.header.version, closed: $0.closed) },
                          hidden: hidden, initiatorDamaged: damaged.clientToServer || pickedUp.clientToServer,
                          streamID: streamID, initialTo: initialHeader?.to.map(normalizedDomain), pickedUp: pickedUp, sasl: sasl,
                          facts: facts)
    }

    /// What the connection showed about its servers' behaviour (see `ConnectionFacts`).
    public var facts: ConnectionFacts {
        var f = ConnectionFacts()
        f.featuresBeforeTLS = preTLSFeatures != nil
        f.featuresInTLS = featuresInTLS
        f.startTLSOffered = preTLSFeatures?.child("starttls", namespace: Namespace.tls) != nil
        f.startTLSRequired = startTLSRequired
        f.dialbackOffered = dialbackFeatureSeen
        f.dialbackErrorsOffered = dialbackErrorsFeatureSeen
        f.bidiOffered = bidiFeatureSeen
        f.bidiRequested = bidi
        f.mechanisms = offeredMechanisms
        f.sentDialbackError = sentDialbackError
        f.stanzas = stanzaCount
        f.stanzaDomains = stanzaDomains
        return f
    }

    /// Judged by XEP-0220 where the profiles differ: this side advertised or used dialback errors.
    public var usesDialbackErrors: (acceptor: Bool, initiator: Bool) {
        (acceptorAdvertisedDialbackErrors || sentDialbackError.serverToClient, sentDialbackError.clientToServer)
    }
}
