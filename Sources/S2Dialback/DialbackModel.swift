import S2Model
import S2XMPP

/// How a top-level dialback element relates to what came before (the model's verdict, which
/// rules then judge).
/// Indirect: rules receive it with every element, and a boxed payload copies as one retain.
public indirect enum DialbackEvent: Sendable {
    /// Untyped db:result from the initiator (XEP-0220 step 1).
    case resultRequest(DialbackExchange?)
    /// Typed db:result from the acceptor; `request` is the pending request it answers (nil: unsolicited).
    case resultReply(pair: DomainPair, type: String?, request: DialbackExchange?)
    /// Untyped db:verify from the initiator (step 2), with the exchange it was matched to and how.
    case verifyRequest(VerifyKey, match: VerifyMatch)
    /// Typed db:verify from the acceptor (step 3); `request` is the request it answers on this connection.
    case verifyReply(VerifyKey, type: String?, request: VerifyRequest?)
    /// A db element in the wrong direction (typed on the initial stream, untyped on the response stream).
    case misdirected
}

/// How a db:verify request was matched to a db:result seen elsewhere.
public enum VerifyMatch: Sendable {
    /// id, domains and key all match a db:result.
    case exact(DialbackExchange)
    /// Domains and key match, but the id is not the RS's stream ID on that connection.
    case wrongID(DialbackExchange)
    /// Domains and id match, but the key differs.
    case wrongKey(DialbackExchange)
    /// No db:result for this pair was seen (it may have travelled outside the capture).
    case none
}

/// Keeps every connection's XMPP state and reconstructs dialback exchanges across connections.
///
/// A db:verify is matched to a db:result by (stream id, Sender, Target, key) — not by
/// addresses — so a verify on a third connection (ejabberd), on the reverse connection of the
/// server pair (Prosody), or from another cluster node is still found (DIALBACK.md §3–4).
public final class DialbackModel {
    public private(set) var connections: [ConnectionModel] = []
    /// Every exchange kept, in number order (a live run forgets those of closed connections;
    /// an offline run reads the settled ones back from its archive).
    public var exchanges: ExchangeList {
        let held = droppedExchanges == 0 && pagedIn.isEmpty ? kept
            : kept.filter { !$0.forgotten && !$0.spilled && pagedIn[$0.number] == nil } + pagedIn.values
        return ExchangeList(held: held, archive: exchangeArchive)
    }
    private var kept: [DialbackExchange] = []
    /// Exchanges in `kept` already forgotten or spilled (removed in batches: O(1) amortised per
    /// connection).
    private var droppedExchanges = 0
    /// Settled exchanges of retired connections (offline runs), out of the heap.
    private let exchangeArchive = ExchangeArchive()
    /// Spilled exchanges brought back by a late db:verify, by number: they stay in memory.
    private var pagedIn: [Int: DialbackExchange] = [:]
    /// Numbers of spilled exchanges by their binding's hash (confirmed against the archive when read).
    let spilledBindings = HashIndex(onDisk: true)
    /// Exchanges by the connection their db:result travelled on, while it is open.
    private var exchangesOf: [ConnectionID: [DialbackExchange]] = [:]
    private var byID: [ConnectionID: ConnectionModel] = [:]
    private var exchangeCounter = 0
    private var resultsByBinding: [ResultBinding: DialbackExchange] = [:]
    /// db:results not yet matched by a db:verify, by pair and key, latest last (popped lazily
    /// once matched): a verify with the wrong id finds its result in O(1) however many share the pair.
    private var unverifiedResults: [PairKey: [DialbackExchange]] = [:]
    struct PairKey: Hashable {
        var pair: DomainPair
        var key: String
    }
    /// Exchanges the authoritative server answered and the receiving server did not yet, by pair
    /// (popped lazily once they have their outcome), for DB-CORR-5.
    private var awaitingVerdict: [DomainPair: [DialbackExchange]] = [:]
    /// Open connections waiting for an answer to a db:verify, by the request's key and the
    /// connection's initiator address (DB-CORR-2 asks which other connection asked).
    private var verifyWaiters: [VerifyWaiter: Set<ConnectionID>] = [:]
    struct VerifyWaiter: Hashable {
        var key: VerifyKey
        var clientAddress: String
    }

    /// Bounds of one connection's dialback state (docs/LIMITS.md). Past one, the request is not
    /// tracked (counted in `untrackedRequests`, one `limit-reached` anomaly through `onLimit`) and the
    /// connection is marked `dialbackOverflow`.
    public static let maxPendingResultsPerConnection = 1_000
    public static let maxPendingVerifiesPerConnection = 1_000
    public static let maxTargetsPerConnection = 1_000
    /// Domains remembered per address (`hostedByAddress`); past it the address counts as hosting
    /// anything (rules about unhosted domains stay quiet for it).
    public static let maxHostedPerAddress = 10_000
    /// Stream records kept per connection (the report lists them); further restarts are counted.
    public static let maxStreamsPerConnection = 64
    /// Called once per connection and bound when a bound of its dialback state is reached.
    public var onLimit: ((ConnectionModel, FrameRef, String) -> Void)?
    /// db:result and db:verify requests not tracked because of a bound.
    public private(set) var untrackedRequests = 0
    /// Addresses whose hosted domains passed `maxHostedPerAddress`.
    private var hostedOverflow: Set<String> = []
    /// Where each unanswered db:verify was asked, across connections and addresses (DB-CORR-2 looks
    /// for replies that come back on another connection). Bounded: beyond it, such replies go unrecognised.
    private var pendingVerifyConnections: [VerifyKey: ConnectionID] = [:]
    private let maxIndexedVerifies = 100_000
    /// Whether the registries of the whole capture (issued stream ids, DB-RES-2's keys) are kept
    /// on disk: offline runs, which keep their history. A live run forgets instead; set before
    /// the first connection.
    public var keepsHistoryOnDisk = true
    private lazy var issuedStreamIDs = IssuedStreamIDs(onDisk: keepsHistoryOnDisk)
    /// Past it, a live run starts its issued stream ids afresh.
    private static let maxIssuedStreamIDsLive = 100_000
    /// Domains each address has shown it hosts (response-header `from`, dialback `from` it asserted).
    public private(set) var hostedByAddress: [String: Set<String>] = [:]
    /// Domains given by the user for each address (normalised as they are set).
    public var configuredHosts: [String: Set<String>] = [:] {
        didSet { configuredHosts = configuredHosts.mapValues { Set($0.map(normalizedDomain)) } }
    }
    /// Called when the receiving server answers a db:result (the exchange has its outcome).
    public var onOutcome: ((DialbackExchange) -> Void)?

    struct ResultBinding: Hashable {
        var streamID: String
        var sender: String
        var target: String
    }

    /// Closed connections of an offline run, on disk (see `retire`).
    public let archive = ConnectionArchive()
    /// Retired connections by the hash of their stream ID (confirmed against the archive): at most
    /// two per stream ID, the first and the first unreadable one (see `fileRetired`).
    let retiredByStreamID = HashIndex(onDisk: true)
    /// A retired connection whose content the capture could not fully read (TLS without keys, a
    /// mid-stream pickup, lost bytes): what DB-CORR-9 asks about paths a verify may have taken.
    public struct UnreadableConnection: Sendable {
        public var clientAddress: String
        public var serverAddress: String
        public var first: Timestamp
        public var last: Timestamp
        public var initialTo: String?
    }
    public private(set) var retiredUnreadable: [UnreadableConnection] = []
    /// More unreadable connections retired than `retiredUnreadable` keeps: any may have been the path.
    public private(set) var retiredUnreadableOverflow = false
    /// Addresses that advertised or sent dialback errors on a retired connection.
    public private(set) var retiredDialbackErrorAddresses: Set<String> = []
    /// Acceptor addresses of retired connections whose initiator side was readable.
    public private(set) var retiredReadableAcceptors: Set<String> = []

    /// Open connections by their acceptor address and initiator address.
    private var openByServerAddress: [String: Set<ConnectionID>] = [:]
    private var openByClientAddress: [String: Set<ConnectionID>] = [:]
    /// Latest start time of a retired connection with an unreadable initiator side (TLS or damage),
    /// by its initiator address and initial `to` (DB-CORR-9).
    private var retiredUnreadableLatest: [AddressAndDomain: Timestamp] = [:]
    struct AddressAndDomain: Hashable {
        var address: String
        var domain: String?
    }

    /// Whether this model relates connections to each other (the correlator's, or a whole
    /// single-stage run): verify ↔ result matching, registries of stream ids and hosted domains,
    /// the exchanges of the report. A shard's model (false) keeps each connection's own state only,
    /// so that what it decides cannot depend on which other connections share its shard.
    public let correlates: Bool

    public init(correlates: Bool = true) {
        self.correlates = correlates
    }

    /// The live model of an open connection.
    public func connection(_ id: ConnectionID) -> ConnectionModel? { byID[id] }

    /// Any connection seen, open or retired.
    public func summary(of id: ConnectionID) -> ConnectionSummary? { byID[id]?.summary ?? archive.summary(of: id) }

    public func open(id: ConnectionID, client: String, server: String, clientAddress: String, serverAddress: String,
                     input: Int, frame: FrameRef) -> ConnectionModel {
        let c = ConnectionModel(id: id, client: client, server: server, clientAddress: clientAddress,
                                serverAddress: serverAddress, input: input, frame: frame)
        c.slot = connections.count
        connections.append(c)
        byID[id] = c
        if correlates {
            openByServerAddress[serverAddress, default: []].insert(id)
            openByClientAddress[clientAddress, default: []].insert(id)
        }
        return c
    }

    public func closed(_ c: ConnectionModel, end: ConnectionEnd, frame: FrameRef) {
        c.end = end
        c.closeFrame = frame
    }

    /// Bytes of direction `d` were lost or skipped: what they carried is unknown.
    public func markDamaged(_ c: ConnectionModel, _ d: Direction) {
        noteLoss(at: c.lastFrame.time)
        c._damaged[d] = true
        c._complete[d] = false
        if c.missing[d] == nil { c._missing[d] = .gap }
    }

    /// Forgets per-connection bookkeeping of a connection that ended (bounded memory in live mode).
    public func release(_ c: ConnectionModel) {
        for key in c.pendingVerifies.keys { forgetPendingVerify(key, on: c) }
        c.pendingVerifies.removeAll()
        c.pendingVerifyIDs.removeAll()
    }

    /// Keeps a closed connection only as its summary (offline runs): the report and the
    /// cross-connection rules need no more, and its exchanges stay.
    public func retire(_ c: ConnectionModel) {
        let s = c.summary
        archive.append(s)
        if let id = s.streamID { fileRetired(s, streamID: id) }
        if s.tls || s.initiatorDamaged {
            let k = AddressAndDomain(address: c.clientAddress, domain: s.initialTo)
            if retiredUnreadableLatest[k].map({ $0 < s.firstFrame.time }) ?? true { retiredUnreadableLatest[k] = s.firstFrame.time }
        }
        if c.hidden || !c.stateKnown {
            if retiredUnreadable.count < 100_000 {
                retiredUnreadable.append(UnreadableConnection(clientAddress: c.clientAddress, serverAddress: c.serverAddress,
                                                              first: s.firstFrame.time, last: s.lastFrame.time, initialTo: s.initialTo))
            } else {
                retiredUnreadableOverflow = true
            }
        }
        let errors = c.usesDialbackErrors
        if errors.acceptor { retiredDialbackErrorAddresses.insert(c.serverAddress) }
        if errors.initiator { retiredDialbackErrorAddresses.insert(c.clientAddress) }
        if !Self.unreadable(s) { retiredReadableAcceptors.insert(c.serverAddress) }
        if correlates, let mine = exchangesOf[c.id] {
            // Settled and verified: nothing on this connection can change it any more, and a late
            // db:verify on another one pages it back in.
            for x in mine where isSettled(x) { spill(x) }
            compactKept()
        }
        byID[c.id] = nil
        exchangesOf[c.id] = nil
        removeFromConnections(c)
    }

    /// Answered and verified: nothing on its connection can change it any more, and a late
    /// db:verify pages it back in. A paged-in exchange stays in memory.
    private func isSettled(_ x: DialbackExchange) -> Bool {
        x.outcome != nil && x.verifyConnection != nil && !x.forgotten && !x.spilled && pagedIn[x.number] == nil
    }

    /// An offline run writes a settled exchange out as soon as it is settled, not when its
    /// db:result's connection closes: a long-lived connection would otherwise hold every exchange
    /// it ever carried (memory growing with the length of the capture).
    private func spillIfSettled(_ x: DialbackExchange) {
        guard correlates, keepsHistoryOnDisk, isSettled(x) else { return }
        spill(x)
        guard x.spilled else { return }
        // Its connection's list holds only what is still unsettled: a few entries.
        exchangesOf[x.resultConnection]?.removeAll { $0 === x }
        compactKept()
    }

    private func spill(_ x: DialbackExchange) {
        guard exchangeArchive.append(x) else { return }
        x.spilled = true
        droppedExchanges += 1
        if let id = x.streamID {
            let b = ResultBinding(streamID: id, sender: x.originating, target: x.receiving)
            if resultsByBinding[b] === x {
                resultsByBinding[b] = nil
                let h = b.hashValue
                // An older exchange spilled under the same binding can no longer answer (the newer
                // one does, as in `resultsByBinding`): it goes, so that one binding reused on every
                // exchange keeps one entry and lookups stay short.
                for n in spilledBindings[h] {
                    guard let old = exchangeArchive.exchange(n), old.streamID == b.streamID,
                          old.originating == b.sender, old.receiving == b.target else { continue }
                    spilledBindings.remove(n, at: h)
                }
                spilledBindings.insert(x.number, at: h)
            }
        }
        // It is verified, so `latestUnverified` would never return it: only its memory goes.
        let k = PairKey(pair: x.pair, key: x.key)
        if var list = unverifiedResults[k] {
            list.removeAll { $0 === x }
            unverifiedResults[k] = list.isEmpty ? nil : list
        }
    }

    /// The exchange bound to `b`: in memory, or paged back in from the archive.
    private func boundResult(_ b: ResultBinding) -> DialbackExchange? {
        if let x = resultsByBinding[b] { return x }
        let h = b.hashValue
        // The latest written first: a binding written twice answers with its newer exchange, as
        // `resultsByBinding` would have.
        for n in spilledBindings[h].sorted(by: >) {
            guard let x = pagedIn[n] ?? exchangeArchive.exchange(n),
                  x.streamID == b.streamID, x.originating == b.sender, x.receiving == b.target else { continue }
            spilledBindings.remove(n, at: h)
            resultsByBinding[b] = register(x)
            return x
        }
        return nil
    }

    /// Spilled exchange `x`, back in memory for good (or the copy already brought back).
    private func register(_ x: DialbackExchange) -> DialbackExchange {
        if let held = pagedIn[x.number] { return held }
        exchangeArchive.remove(x.number)
        x.spilled = false
        pagedIn[x.number] = x
        return x
    }

    /// The object that speaks for `x` now: `x` itself, or the copy a late db:verify paged in.
    private func current(_ x: DialbackExchange) -> DialbackExchange {
        x.spilled ? register(x) : (pagedIn[x.number] ?? x)
    }

    private func compactKept() {
        if droppedExchanges > 1024 && droppedExchanges * 2 > kept.count {
            kept.removeAll { $0.forgotten || $0.spilled }
            droppedExchanges = 0
        }
    }

    /// What the open connections keep of what their peers sent (`ConnectionModel.retainedBytes`),
    /// a running total the memory budget reads (never a walk over the connections).
    public var openRetainedBytes: Int { _openRetainedBytes }
    var _openRetainedBytes = 0
    /// The part of `openRetainedBytes` that is this model's own: the domain caches. The rest
    /// (headers, features, stream errors, stanza domains) is storage of the events themselves,
    /// shared with any other model shown the same events.
    public var openDomainCacheBytes: Int { _openDomainCacheBytes }
    var _openDomainCacheBytes = 0

    /// What one kept value is charged: its estimate, but at most this many bytes per byte of the XML
    /// it came from. Real headers and features keep 2–5 bytes per byte; only names repeated in long
    /// namespaces keep more (each node's namespace is its own string). The cap lets the engine bound
    /// what rounds not yet applied may add from their byte count alone (`--threads`).
    public static let maxRetainedBytesPerWireByte = 16

    private static func retained(_ bytes: Int, of e: XMPPEvent) -> Int {
        let wire = e.endOffset > e.startOffset ? Int(e.endOffset - e.startOffset) : 1
        return min(bytes, maxRetainedBytesPerWireByte * wire)
    }

    /// Applies a change to what `c` keeps, and to the running total.
    @inline(__always)
    private func retain(_ c: ConnectionModel, _ change: (ConnectionModel) -> Void) {
        let before = c.retainedBytes
        change(c)
        _openRetainedBytes += c.retainedBytes - before
    }

    /// Takes `c` out of `connections` and the indexes of open connections in O(1) (the order of
    /// `connections` means nothing).
    private func removeFromConnections(_ c: ConnectionModel) {
        Self.remove(c.id, c.serverAddress, from: &openByServerAddress)
        Self.remove(c.id, c.clientAddress, from: &openByClientAddress)
        let i = c.slot
        guard i >= 0, i < connections.count, connections[i] === c else { return }
        _openRetainedBytes -= c.retainedBytes
        _openDomainCacheBytes -= c.jidDomains.clientToServer.retainedBytes + c.jidDomains.serverToClient.retainedBytes
        let last = connections.removeLast()
        if last !== c {
            connections[i] = last
            last.slot = i
        }
        c.slot = -1
    }

    /// Drops a closed connection that carried no XMPP (a probe, a scan): it is counted, not kept,
    /// and it takes nothing else with it.
    public func discard(_ c: ConnectionModel) {
        byID[c.id] = nil
        exchangesOf[c.id] = nil
        removeFromConnections(c)
    }

    /// Drops a closed connection and the exchanges that are settled with it, so that a live run
    /// keeps memory flat. Offline runs keep everything for the report.
    public func forget(_ c: ConnectionModel) {
        byID[c.id] = nil
        removeFromConnections(c)
        // Only the closing connection's exchanges and indexes are touched: closing costs what the
        // connection carried, not what all open connections carry.
        if issuedStreamIDs.count > Self.maxIssuedStreamIDsLive { issuedStreamIDs = IssuedStreamIDs(onDisk: false) }
        guard let gone = exchangesOf.removeValue(forKey: c.id) else { return }
        for x in gone {
            x.forgotten = true
            if let id = x.streamID {
                let b = ResultBinding(streamID: id, sender: x.originating, target: x.receiving)
                if resultsByBinding[b] === x { resultsByBinding[b] = nil }
            }
            let k = PairKey(pair: x.pair, key: x.key)
            if let list = unverifiedResults[k] {
                let rest = list.filter { $0 !== x }
                unverifiedResults[k] = rest.isEmpty ? nil : rest
            }
            if let list = awaitingVerdict[x.pair] {
                let rest = list.filter { $0 !== x }
                awaitingVerdict[x.pair] = rest.isEmpty ? nil : rest
            }
        }
        droppedExchanges += gone.count
        compactKept()
    }

    /// The exchanges whose db:result travelled on the open connection `c`.
    public func exchanges(of c: ConnectionID) -> [DialbackExchange] { exchangesOf[c] ?? [] }


    private static func remove(_ c: ConnectionID, _ key: String, from index: inout [String: Set<ConnectionID>]) {
        index[key]?.remove(c)
        if index[key]?.isEmpty == true { index[key] = nil }
    }

    /// Open connections whose acceptor is at `address`.
    public func openConnections(toServer address: String) -> [ConnectionModel] {
        (openByServerAddress[address] ?? []).compactMap { byID[$0] }
    }

    /// Open connections whose initiator is at `address`.
    public func openConnections(fromClient address: String) -> [ConnectionModel] {
        (openByClientAddress[address] ?? []).compactMap { byID[$0] }
    }

    /// Whether a retired connection from `address` with initial `to` = `domain` and an unreadable
    /// initiator side started at or after `time`.
    public func retiredUnreadable(from address: String, to domain: String, since time: Timestamp) -> Bool {
        retiredUnreadableLatest[AddressAndDomain(address: address, domain: domain)].map { $0 >= time } ?? false
    }

    /// Domains the party at `address` is known to host: what it proved on the wire plus what
    /// the user configured.
    public func hosted(by address: String) -> Set<String> {
        hostedByAddress[address, default: []].union(configuredHosts[address, default: []])
    }

    public func isHostKnown(_ address: String) -> Bool { configuredHosts[address] != nil }

    /// Whether the user configured `address` to host `domain` (knowledge every shard shares).
    public func isConfiguredHost(_ address: String, _ domain: String) -> Bool {
        configuredHosts[address]?.contains(normalizedDomain(domain)) == true
    }

    /// Whether the party at `address` is known to host `domain` (or hosts too many to tell).
    public func hosts(_ address: String, _ domain: String) -> Bool {
        let domain = normalizedDomain(domain)
        return hostedOverflow.contains(address) || hostedByAddress[address]?.contains(domain) == true
            || configuredHosts[address]?.contains(domain) == true
    }

    /// Whether anything is known of what `address` hosts.
    public func knowsHosted(by address: String) -> Bool {
        hostedByAddress[address]?.isEmpty == false || configuredHosts[address]?.isEmpty == false
    }

    private func recordHosted(_ address: String, _ domain: String) {
        if hostedByAddress[address]?.contains(domain) == true || hostedOverflow.contains(address) { return }
        if hostedByAddress[address, default: []].count >= Self.maxHostedPerAddress {
            hostedOverflow.insert(address)
            return
        }
        hostedByAddress[address, default: []].insert(domain)
    }

    /// Applies one XMPP event to the model; returns what it meant for dialback (if anything).
    @discardableResult
    public func apply(_ e: XMPPEvent, on c: ConnectionModel) -> DialbackEvent? {
        let d = e.direction
        if case .element(let el) = e.kind {
            c.tally.element(d, at: e.lastFrame, stanza: el.isStanza)
            afterSASLSuccess(c, d)
            return element(el, e, on: c)
        }
        c.lastFrame = e.lastFrame
        afterSASLSuccess(c, d)
        switch e.kind {
        case .streamOpened(let h):
            if c.tls { c._decrypted = true }
            if c.firstAfterSASLSuccess, h.isStreamRoot, d == .serverToClient,
               let i = c.sasl.lastIndex(where: { $0.outcome == .success }) {
                c.sasl[i].streamIDAfter = h.id
            }
            if d == .clientToServer {
                c._initialHeader = h
            } else {
                c._responseHeader = h
            }
            let headerBytes = Self.retained(h.retainedBytes, of: e)
            c.headerFrames[d] = e.firstFrame
            c.elementsSinceHeader[d] = 0
            c._complete[d] = true
            c._missing[d] = nil
            if c.streams.count < Self.maxStreamsPerConnection {
                c.streams.append(StreamRecord(direction: d, header: h, frame: e.firstFrame))
                // The current header is the record's value: one storage, charged once. (The
                // header slot is charged only past the cap, after which no record is added.)
                c.retainedAppended += headerBytes
                _openRetainedBytes += headerBytes
            } else {
                retain(c) { c in c.retainedHeaders[d] = headerBytes }
                c.streamsNotRecorded += 1
                if c.streamsNotRecorded == 1 {
                    onLimit?(c, e.firstFrame, "more than \(Self.maxStreamsPerConnection) stream headers on this connection; the report lists the first \(Self.maxStreamsPerConnection)")
                }
            }
            if d == .serverToClient && correlates {
                if let from = h.from, !from.isEmpty { recordHosted(c.serverAddress, normalizedDomain(from)) }
                if let id = h.id, !id.isEmpty { issuedStreamIDs.record(id, at: c.serverAddress, on: c.id) }
            }
            return nil
        case .streamClosed:
            c.streamClosed[d] = true
            c.streamClosedFrame[d] = e.firstFrame
            if let i = c.streams.lastIndex(where: { $0.direction == d }) { c.streams[i].closed = true }
            return nil
        case .tlsStarted:
            if !c.tls { c._tls = true; c._tlsFrame = e.firstFrame }
            return nil
        case .pickedUp:
            c.pickedUp[d] = true
            c._complete[d] = false
            c._missing[d] = .midstream
            return nil
        case .bytesLost:
            markDamaged(c, d)
            return nil
        default:
            return nil
        }
    }

    /// A direction without a stream header: the domains its stanzas come from say which servers
    /// it joins (the first `ConnectionFacts.maxStanzaDomains`).
    private func noteStanzaDomain(_ el: XMLElement, _ d: Direction, on c: ConnectionModel) {
        guard !c.hasHeader(d), c.stanzaDomains[d].count < ConnectionFacts.maxStanzaDomains,
              let domain = el.fromDomain, !domain.isEmpty,
              !c.stanzaDomains[d].contains(domain) else { return }
        c.stanzaDomains[d].append(domain)
        let kept = 32 + domain.utf8.count
        c.retainedAppended += kept
        _openRetainedBytes += kept
    }

    /// The first event of each direction after SASL `<success/>` is its restarted stream's.
    private func afterSASLSuccess(_ c: ConnectionModel, _ d: Direction) {
        if c.saslSucceeded {
            c._firstAfterSASLSuccess = c.saslRestart[d]
            c.saslRestart[d] = false
        }
    }

    private func element(_ el: XMLElement, _ e: XMPPEvent, on c: ConnectionModel) -> DialbackEvent? {
        let d = e.direction
        if el.isStanza {
            // Counted with the element (`ElementTally`); nothing else of the model changes. The
            // stanza's domains, which the rules ask for, come from the stream's cache.
            // Grows only when a domain was new to the cache (nearly never: a test per stanza).
            let grown = el.resolveDomains(&c.jidDomains[d])
            if grown != 0 {
                _openRetainedBytes += grown
                _openDomainCacheBytes += grown
            }
            noteStanzaDomain(el, d, on: c)
            return nil
        }
        if el.namespace == Namespace.streams {
            if el.local == "features" && d == .serverToClient {
                c.features = el
                c.offeredMechanisms = DialbackModel.mechanisms(in: el)
                if c.tls { c.featuresInTLS = true }
                if let db = el.child("dialback", namespace: Namespace.dialbackFeature) {
                    c.dialbackFeatureSeen = true
                    if db.child("errors") != nil { c.dialbackErrorsFeatureSeen = true }
                }
                if el.child("bidi", namespace: Namespace.bidiFeature) != nil { c.bidiFeatureSeen = true }
                let featureBytes = Self.retained(el.retainedBytes, of: e)
                // Before TLS, `features` is `preTLSFeatures`: one element, counted once.
                retain(c) { c in if c.tls { c.retainedFeatures = featureBytes } else { c.retainedPreTLSFeatures = featureBytes } }
                if !c.tls {
                    c.preTLSFeatures = el
                    c._startTLSRequired = el.child("starttls", namespace: Namespace.tls)?.child("required") != nil
                }
            } else if el.local == "error" && c.streamError[d] == nil {
                c.streamError[d] = el
                let errorBytes = Self.retained(el.retainedBytes, of: e)
                retain(c) { c in c.retainedStreamErrors[d] = errorBytes }
                c.streamErrorFrame[d] = e.firstFrame
            }
            return nil
        }
        if el.namespace == Namespace.sasl { sasl(el, e, on: c) }
        if el.is("bidi", Namespace.bidi) && d == .clientToServer { c._bidi = true }
        if el.local == "message" || el.local == "presence" || el.local == "iq" {
            c.stanzaCount[d] += 1
            c.carriedOnlyVerify = false
            noteStanzaDomain(el, d, on: c)
        }
        guard el.namespace == Namespace.dialback else {
            if el.local != "features" { c.carriedOnlyVerify = c.carriedOnlyVerify && el.namespace == Namespace.streams }
            return nil
        }
        let type = el[attribute: "type"]
        if type == "error" { c.sentDialbackError[d] = true }
        let typed = type != nil
        // Classic dialback: requests travel initiator → acceptor, answers come back. On a XEP-0288
        // bidi connection either side may ask. When the capture missed part of the connection,
        // whether bidi was negotiated is unknown, so both readings stay open (rules stay silent).
        let eitherWay = c.bidi || !c.stateKnown
        let forward = d == .clientToServer
        if el.local == "result" {
            c.carriedOnlyVerify = false
            if !typed && (forward || eitherWay) { return resultRequest(el, e, on: c) }
            if typed && (!forward || eitherWay) { return resultReply(el, type: type, e, on: c) }
            return .misdirected
        }
        if el.local == "verify" {
            if !typed && (forward || eitherWay) { return verifyRequest(el, e, on: c) }
            if typed && (!forward || eitherWay) { return verifyReply(el, type: type, e, on: c) }
            return .misdirected
        }
        return nil
    }

    /// An untyped db:result: the sender of `e`'s direction asks the other side to validate a pair.
    private func resultRequest(_ el: XMLElement, _ e: XMPPEvent, on c: ConnectionModel) -> DialbackEvent {
        guard let s = el[attribute: "from"], let t = el[attribute: "to"], !s.isEmpty, !t.isEmpty else {
            return .resultRequest(nil)
        }
        let d = e.direction
        let pair = DomainPair(sender: s, target: t)
        if correlates { recordHosted(c.address(of: d), pair.sender) }
        if c.pendingResults[d][pair] == nil && c.pendingResults[d].count >= Self.maxPendingResultsPerConnection {
            untracked(c, e.firstFrame, "more than \(Self.maxPendingResultsPerConnection) db:result requests await an answer on this connection; further ones are not tracked")
            return .resultRequest(nil)
        }
        c.latestRequestAddedTarget = false
        if d == .clientToServer, !c.requestedTargets.contains(pair.target) {
            if c.requestedTargets.count < Self.maxTargetsPerConnection {
                c.requestedTargets.insert(pair.target)
                c.latestRequestAddedTarget = true
            } else {
                untracked(c, e.firstFrame, "more than \(Self.maxTargetsPerConnection) target domains requested on this connection")
            }
        }
        exchangeCounter += 1
        let x = DialbackExchange(number: exchangeCounter, pair: pair, streamID: c.streamID,
                                 key: el.trimmedText, connection: c, direction: d, frame: e.firstFrame)
        x.steps.append(DialbackStep(kind: .resultRequest, connection: c.id, direction: d, frame: e.firstFrame,
                                    summary: "<db:result from='\(s)' to='\(t)'>"))
        c.pendingResults[d][pair] = x
        if correlates {
            kept.append(x)
            exchangesOf[c.id, default: []].append(x)
            if let id = c.streamID { resultsByBinding[ResultBinding(streamID: id, sender: pair.sender, target: pair.target)] = x }
            unverifiedResults[PairKey(pair: pair, key: x.key), default: []].append(x)
        }
        return .resultRequest(x)
    }

    /// A typed db:result: the answer to a request that travelled the other way.
    private func resultReply(_ el: XMLElement, type: String?, _ e: XMPPEvent, on c: ConnectionModel) -> DialbackEvent {
        let asker = e.direction.reversed
        // The reply says from=T to=S.
        let pair = DomainPair(sender: el[attribute: "to"] ?? "", target: el[attribute: "from"] ?? "")
        let request = c.pendingResults[asker].removeValue(forKey: pair)
        if let x = request {
            x.outcome = type
            // Settled exchanges at the end of the pair's list are what `verifiedAwaitingVerdict`
            // drops first anyway; dropping them now keeps the list short.
            if var list = awaitingVerdict[pair], list.last?.outcome != nil {
                while let last = list.last, last.outcome != nil { list.removeLast() }
                awaitingVerdict[pair] = list.isEmpty ? nil : list
            }
            x.resultReplyFrame = e.firstFrame
            x.steps.append(DialbackStep(kind: .resultReply, connection: c.id, direction: e.direction, frame: e.firstFrame,
                                        type: type, summary: "<db:result type='\(type ?? "")'/>",
                                        carriesID: el[attribute: "id"] != nil, carriesKey: !el.trimmedText.isEmpty))
            onOutcome?(x)
            spillIfSettled(x)
        }
        // An answer with no request seen validates only when the request may lie where the
        // capture could not see it (or a bound kept it untracked); on a fully observed connection
        // it is unsolicited.
        if request != nil || !c.stateKnown || c.dialbackOverflow {
            switch type {
            case "valid": c.validated[asker].insert(pair); c._invalidated[asker].remove(pair)
            case "invalid": c._invalidated[asker].insert(pair); c.validated[asker].remove(pair)
            default: break
            }
        }
        return .resultReply(pair: pair, type: type, request: request)
    }

    private func verifyRequest(_ el: XMLElement, _ e: XMPPEvent, on c: ConnectionModel) -> DialbackEvent {
        let key = VerifyKey(from: el[attribute: "from"] ?? "", to: el[attribute: "to"] ?? "", id: el[attribute: "id"] ?? "")
        let text = el.trimmedText
        // The verify says from=T to=S id=<RS stream id on A>.
        let pair = DomainPair(sender: key.to, target: key.from)
        var match = VerifyMatch.none
        if !correlates {
            // A shard does not know the other connections the db:result may have come on.
        } else if let x = boundResult(ResultBinding(streamID: key.id, sender: pair.sender, target: pair.target)) {
            match = x.key == text ? .exact(x) : .wrongKey(x)
        } else if let x = latestUnverified(PairKey(pair: pair, key: text)) {
            match = .wrongID(x)
        }
        var exchange: DialbackExchange?
        if case .exact(let x) = match { exchange = x }
        if case .wrongKey(let x) = match { exchange = x }
        if case .wrongID(let x) = match { exchange = x }
        if let x = exchange, x.verifyConnection == nil {
            x.verifyConnection = c.id
            x.verifyFrame = e.firstFrame
            x.verifyKey = text
            x.verifyStreamID = key.id
            x.authoritativeAddress = c.address(of: e.direction.reversed)
            x.steps.append(DialbackStep(kind: .verifyRequest, connection: c.id, direction: e.direction, frame: e.firstFrame,
                                        summary: "<db:verify from='\(key.from)' to='\(key.to)' id='\(key.id)'>"))
            spillIfSettled(x)
        }
        if c.pendingVerifies[key] == nil {
            if c.pendingVerifies.count >= Self.maxPendingVerifiesPerConnection {
                untracked(c, e.firstFrame, "more than \(Self.maxPendingVerifiesPerConnection) db:verify requests await an answer on this connection; further ones are not tracked")
                return .verifyRequest(key, match: match)
            }
            if correlates { verifyWaiters[VerifyWaiter(key: key, clientAddress: c.clientAddress), default: []].insert(c.id) }
        }
        let added = c.pendingVerifies[key] == nil
        c.pendingVerifies[key] = VerifyRequest(key: key, keyText: text, frame: e.firstFrame, direction: e.direction, exchange: exchange)
        if added { c.addPendingVerifyID(key) }
        if correlates && pendingVerifyConnections.count < maxIndexedVerifies { pendingVerifyConnections[key] = c.id }
        return .verifyRequest(key, match: match)
    }

    private func verifyReply(_ el: XMLElement, type: String?, _ e: XMPPEvent, on c: ConnectionModel) -> DialbackEvent {
        // The reply swaps from/to and copies id: from=S to=T.
        let key = VerifyKey(from: el[attribute: "to"] ?? "", to: el[attribute: "from"] ?? "", id: el[attribute: "id"] ?? "")
        var request = c.pendingVerifies.removeValue(forKey: key)
        if request != nil { forgetPendingVerify(key, on: c) }
        if let r = request, let asked = r.exchange {
            let x = current(asked)
            request?.exchange = x
            if x.verifyType == nil, x.outcome == nil { awaitingVerdict[x.pair, default: []].append(x) }
            x.verifyType = type
            x.verifyReplyFrame = e.firstFrame
            x.steps.append(DialbackStep(kind: .verifyReply, connection: c.id, direction: e.direction, frame: e.firstFrame,
                                        type: type, summary: "<db:verify type='\(type ?? "")'/>"))
        }
        return .verifyReply(key, type: type, request: request)
    }

    /// The open connection where a db:verify with this (from, to, id) is waiting for its answer.
    public func connectionAwaitingVerify(_ key: VerifyKey) -> ConnectionModel? {
        guard let id = pendingVerifyConnections[key], let c = byID[id], c.pendingVerifies[key] != nil else { return nil }
        return c
    }

    /// Whether a connection from `address` toward `domain`, opened at or after `since`, could not be
    /// read (TLS, pickup, loss): a verification attempt the capture cannot follow.
    public func unreadableConnection(from address: String, to domain: String, openedSince since: Timestamp) -> Bool {
        connections.contains {
            $0.clientAddress == address && $0.firstFrame.time >= since && $0.initialHeader?.to.map(normalizedDomain) == domain
                && ($0.tls || $0.damaged.clientToServer)
        } || retiredUnreadable.contains {
            $0.clientAddress == address && $0.first >= since && $0.initialTo == domain
        }
    }

    /// When the capture last showed that it lost bytes (on any connection).
    public var lastLoss: Timestamp { _lastLoss }
    var _lastLoss: Timestamp = Timestamp(seconds: .min, nanoseconds: 0)

    /// Whether the capture lost bytes anywhere since `time`: an absence it would otherwise prove
    /// (no db:verify anywhere) may lie in what the sensor dropped, on a connection it never saw.
    public func lossObserved(since time: Timestamp) -> Bool { lastLoss >= time }

    /// Packets the capture itself lost at `time` (kernel or interface drops in a live run): no
    /// connection may show a hole for them, since a connection whose last packets were dropped
    /// simply goes silent.
    public func noteLoss(at time: Timestamp) { if time > lastLoss { _lastLoss = time } }

    /// Whether some connection with `address` at either end, alive at some point between `a` and
    /// `b`, could not be fully read (TLS without keys, a mid-stream pickup, lost bytes). Either may
    /// come first: capture clocks step back (merged files, a corrected clock, a forged pcap), and a
    /// window built as `a...b` from them would trap.
    public func unreadableConnection(involving address: String, between a: Timestamp, and b: Timestamp) -> Bool {
        let window = min(a, b)...max(a, b)
        if retiredUnreadableOverflow { return true }
        let open = connections.contains { c in
            (c.clientAddress == address || c.serverAddress == address) && c.lastFrame.time >= window.lowerBound
                && c.firstFrame.time <= window.upperBound && (c.hidden || !c.stateKnown)
        }
        return open || retiredUnreadable.contains {
            ($0.clientAddress == address || $0.serverAddress == address) && $0.last >= window.lowerBound && $0.first <= window.upperBound
        }
    }

    /// Why some connection toward `address` (open or retired) could not be fully read, if one could
    /// not: what was sent to that server may lie there.
    public func unreadableConnection(toward address: String) -> Unobserved? {
        for c in connections where c.serverAddress == address {
            if c.hidden { return .encrypted }
            if c.pickedUp.clientToServer { return .midstream }
            if c.damaged.clientToServer { return .gap }
        }
        if retiredUnreadableOverflow { return .gap }
        return retiredUnreadable.contains { $0.serverAddress == address } ? .midstream : nil
    }

    /// Addresses that showed they host `domain` (normalised).
    public func addresses(hosting domain: String) -> [String] {
        hostedByAddress.compactMap { $0.value.contains(domain) ? $0.key : nil }
            + configuredHosts.compactMap { $0.value.contains(domain) ? $0.key : nil }
    }

    /// A request `c` sent that a bound kept from being tracked.
    private func untracked(_ c: ConnectionModel, _ frame: FrameRef, _ why: String) {
        untrackedRequests += 1
        if !c.dialbackOverflow {
            c.dialbackOverflow = true
            onLimit?(c, frame, why)
        }
    }

    /// The latest exchange for `pair` that the authoritative server answered, that has no outcome yet
    /// and whose db:result did not travel on `c` (among the 64 latest such exchanges).
    public func verifiedAwaitingVerdict(_ pair: DomainPair, besides c: ConnectionID) -> DialbackExchange? {
        guard var list = awaitingVerdict[pair] else { return nil }
        let before = list.count
        while let last = list.last, last.outcome != nil { list.removeLast() }
        if list.count != before { awaitingVerdict[pair] = list.isEmpty ? nil : list }
        return list.suffix(64).last { $0.outcome == nil && $0.resultConnection != c }
    }

    /// The latest db:result with this pair and key that no db:verify matched yet.
    private func latestUnverified(_ k: PairKey) -> DialbackExchange? {
        guard var list = unverifiedResults[k] else { return nil }
        let before = list.count
        while let last = list.last, last.verifyConnection != nil { list.removeLast() }
        if list.count != before { unverifiedResults[k] = list.isEmpty ? nil : list }
        return list.last
    }

    private func forgetPendingVerify(_ key: VerifyKey, on c: ConnectionModel) {
        c.removePendingVerifyID(key)
        if pendingVerifyConnections[key] == c.id { pendingVerifyConnections[key] = nil }
        let w = VerifyWaiter(key: key, clientAddress: c.clientAddress)
        verifyWaiters[w]?.remove(c.id)
        if verifyWaiters[w]?.isEmpty == true { verifyWaiters[w] = nil }
    }

    /// Another open connection from `clientAddress` waiting for the answer to the db:verify `key`.
    public func connectionAwaitingVerify(_ key: VerifyKey, from clientAddress: String, besides c: ConnectionID) -> ConnectionID? {
        verifyWaiters[VerifyWaiter(key: key, clientAddress: clientAddress)]?.first { $0 != c }
    }

    /// The exchange a verify with (from=T, to=S, id) belongs to, if any.
    public func exchange(streamID: String, sender: String, target: String) -> DialbackExchange? {
        boundResult(ResultBinding(streamID: streamID, sender: sender, target: target))
    }

    /// The first connection on which the server at `address` issued stream id `id`.
    public func firstConnection(issuing id: String, at address: String) -> ConnectionID? {
        issuedStreamIDs.firstConnection(issuing: id, at: address)
    }

    /// What the capture saw of the streams whose acceptor issued `streamID`.
    public struct StreamIDSighting: Sendable {
        /// The first connection (lowest ID, open or retired) that carried it.
        public var first: ConnectionSummary
        /// Whether the capture could not fully read the initiator's side of one of them (TLS
        /// without keys, a gap, a mid-stream pickup): what it carried there is unknown.
        public var anyUnreadable: Bool
    }

    /// The connections (open or retired) whose acceptor issued `id`, as far as a rule asks about
    /// them; nil when the capture saw none.
    public func sighting(ofStreamID id: String) -> StreamIDSighting? {
        let named = connections.filter { $0.streamID == id }.map(\.summary)
            + retiredByStreamID[id.hashValue].compactMap { archive.summary(of: ConnectionID($0)) }.filter { $0.streamID == id }
        guard let first = named.min(by: { $0.id < $1.id }) else { return nil }
        return StreamIDSighting(first: first, anyUnreadable: named.contains(where: Self.unreadable))
    }

    private static func unreadable(_ s: ConnectionSummary) -> Bool { s.hidden || s.initiatorDamaged }

    /// Files retired connection `s` under its stream ID, keeping only what `sighting` answers
    /// from: the first connection and the first unreadable one. A stream ID that a hostile peer
    /// reuses on every connection would otherwise make each sighting, and each insert into the
    /// index's probe run (one tag for them all), walk every connection that carried it.
    private func fileRetired(_ s: ConnectionSummary, streamID id: String) {
        let h = id.hashValue
        let candidates = retiredByStreamID[h]
        // Nearly every stream id is issued once: nothing filed under it yet.
        if candidates.isEmpty {
            retiredByStreamID.insert(s.id.value, at: h)
            return
        }
        let filed = candidates.compactMap { archive.summary(of: ConnectionID($0)) }.filter { $0.streamID == id }
        let all = filed + [s]
        let first = all.min { $0.id < $1.id }?.id
        let firstUnreadable = all.filter(Self.unreadable).min { $0.id < $1.id }?.id
        for o in filed where o.id != first && o.id != firstUnreadable { retiredByStreamID.remove(o.id.value, at: h) }
        if s.id == first || s.id == firstUnreadable { retiredByStreamID.insert(s.id.value, at: h) }
    }

    /// Every connection seen, in ID order (for the report): open ones are retired first.
    public func retireAll() -> ConnectionList {
        for c in connections.sorted(by: { $0.id < $1.id }) { retire(c) }
        return ConnectionList(archive: archive)
    }
}
