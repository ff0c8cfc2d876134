import S2Dialback
import S2Model
import S2Rules
import S2XMPP

/// One rule a server broke, all its occasions together: how often, since when, until when, and
/// where to look first.
public struct ServerFinding: Sendable {
    public var rule: String
    public var severity: Severity
    /// Listed findings plus those past the per-connection bound (counted, not listed).
    public var count: Int
    public var first: FrameRef
    public var last: FrameRef
    /// The first listed occasion.
    public var exampleConnection: ConnectionID
    public var exampleFrame: FrameRef
    /// The connections it happened on (for the HTML report's filters), the first `maxConnectionsKept`.
    public var connections: [ConnectionID]
    static let maxConnectionsKept = 256
}

/// Outcomes of dialback exchanges (the report contract's four).
public struct OutcomeCounts: Sendable, Equatable {
    public var valid = 0, invalid = 0, error = 0, pending = 0
    public init() {}
    public var total: Int { valid + invalid + error + pending }
    mutating func add(_ outcome: String?) {
        switch outcome {
        case "valid": valid += 1
        case "invalid": invalid += 1
        case nil: pending += 1
        default: error += 1  // error, or any other type (DB-SYN-1), as the dialbacks[] records count it
        }
    }
}

/// What the capture shows of how a server behaves, as plain facts; nil where it shows nothing.
public struct ServerProfile: Sendable {
    /// How it sent db:verify as the receiving server: over a connection that also carried its own
    /// dialback request or stanzas toward the authoritative server (`reverse`), over one that
    /// carried only verification (`separate`), both (`mixed`), or no verify was seen (`unseen`).
    public var verifyConnection = "unseen"
    public var verifyConnections = (separate: 0, reverse: 0)
    /// Advertised `<dialback><errors/></dialback>` or sent a `type='error'` dialback element.
    public var dialbackErrors: Bool?
    public var dialbackErrorsAdvertised: Bool?
    public var dialbackErrorsSent = false
    /// STARTTLS in its pre-TLS features: offered, required (in every one), absent.
    public var startTLS: String?
    /// Offered XEP-0288 bidi as acceptor or asked for it as initiator; false when its features
    /// lacked it or it did not ask a peer that offered it.
    public var bidi: Bool?
    /// Offered SASL EXTERNAL (features inside TLS) or tried it as initiator; false when its
    /// features inside TLS lacked it.
    public var saslExternal: Bool?
    /// Its initial stream headers carried `id=''`.
    public var initialHeaderEmptyID: Bool?
    /// Its typed db:result answers carried an `id` attribute, and the key text.
    public var typedResultID: Bool?
    public var typedResultKey: Bool?
    /// The `version` attributes of its stream headers ("" for none).
    public var streamVersions: [String] = []
    public init() {}
}

/// One server as the capture shows it: the addresses the capture links to one dialback key space
/// or stream-id generator (one address unless it shows more), the domains claimed there, its roles
/// in dialback, the exchanges it took part in, what it did, and what it broke.
public struct ServerRow: Sendable {
    /// `S1`, `S2`… in order of first appearance.
    public var id: String
    public var number: Int
    /// Domains claimed in stream headers (`from`), dialback (`from` of a request, of an answer as
    /// receiving or authoritative server) and SASL, normalised and sorted (the first `maxDomainsListed`).
    public var domains: [String]
    public var domainsNotListed = 0
    /// Of those, the domains a peer accepted it as (dialback `valid`, SASL success).
    public var authenticatedDomains: [String]
    /// Domains of the stanzas it sent where none of its stream headers was seen (connections
    /// picked up mid-stream): not claims of its own, the only hint of who it is there.
    public var stanzaDomains: [String] = []
    /// Addresses in order of first appearance.
    public var addresses: [String]
    /// Why these addresses and domains are one row.
    public var grouping: String
    /// `originating`, `receiving`, `authoritative`, in that order: its parts in dialback
    /// exchanges, and in SASL authentications that succeeded (the initiator that authenticated its
    /// domain is originating, the acceptor receiving).
    public var roles: [String]
    public var dialbacks = OutcomeCounts()
    public var dialbacksByRole: [(role: String, outcomes: OutcomeCounts)] = []
    public var connectionsInitiated = 0
    public var connectionsAccepted = 0
    public var stanzasSent = 0
    public var firstSeen: FrameRef
    public var lastSeen: FrameRef
    public var profile = ServerProfile()
    /// Worst severity first, then rule ID.
    public var findings: [ServerFinding] = []
    /// Numbers of the dialback exchanges it took part in.
    public var exchanges: [Int] = []

    /// The worst severity of each rule it broke.
    public func worst(_ rule: String) -> ServerFinding? {
        findings.filter { $0.rule == rule }.max { $0.severity < $1.severity }
    }

    public func count(_ rule: String) -> Int { findings.filter { $0.rule == rule }.reduce(0) { $0 + $1.count } }

    /// A short label: the first domain, else the first stanza domain, else the first address.
    public var label: String { domains.first ?? stanzaDomains.first ?? addresses.first ?? id }
}

/// The per-server view of a report (issue #18, REPORT.md `servers`): built from the report's
/// connections, exchanges and findings alone, so it is the same for one capture or many.
///
/// A server is found by its addresses. One address is one row, whatever domains it claims there
/// (a server hosting several domains, or several servers behind one address, look alike). Several
/// addresses become one row only when the capture links them through dialback:
/// - one key space: the authoritative server at address Z answered `valid` for the key that the
///   originating server sent from address X, the receiving server accepted it, and Z never answered
///   `invalid` for a key from X: X and Z hold the same dialback secret;
/// - one stream-id generator: the db:verify that address W sent carried the stream id that the
///   receiving server issued at address Y, with the key Y received, and Y's answer followed the
///   authoritative server's verdict: W and Y are one receiving server.
/// Claiming the same domain is never enough (an attacker claims the victim's domain).
public struct ServerTable: Sendable {
    public var rows: [ServerRow] = []
    /// Rules in the order of the matrix: worst severity anywhere first, then rule ID.
    public var rules: [String] = []
    /// Findings whose connection the report does not list (none in a consistent report).
    public var unattributed = 0
    /// Servers past `maxRowsListed` (the least remarkable ones), and their findings: counted, not listed.
    public var rowsNotListed = 0
    public var findingsNotListed = 0

    /// A capture from 100,000 addresses would otherwise make 100,000 rows (over 1 KiB each, and
    /// a matrix nobody reads); the rows kept are those with the worst findings, then the most
    /// findings, then the most connections, in capture order.
    public static let maxRowsListed = 1_000
    /// Addresses with state of their own while the table is built (claims, profile facts, links):
    /// past this, the least remarkable addresses (by the same order) share one untracked slot, so
    /// the table costs memory in proportion to this bound, not to the number of peers.
    public static let maxAddressesTracked = 10_000

    public static let maxDomainsListed = 100
    static let maxEvidenceListed = 3

    /// Which address a finding is charged to: the connection's initiator or acceptor when the rule
    /// names that role, otherwise the sender of the finding's direction (for a missing reaction,
    /// the direction the reaction was due from).
    public static func chargedAddress(_ v: (actor: Actor, direction: Direction), client: String, server: String) -> String {
        switch v.actor {
        case .initiator: return client
        case .acceptor: return server
        case .originating, .receiving, .authoritative: return v.direction == .clientToServer ? client : server
        }
    }

    public init(_ r: AnalysisReport, maxRowsListed: Int = ServerTable.maxRowsListed,
                maxAddressesTracked: Int = ServerTable.maxAddressesTracked) {
        let (tracked, addressCount) = Self.trackedAddresses(r, limit: max(1, maxAddressesTracked))
        // Addresses, each with an index; connections by ID with their two address indexes.
        var addressIndex: [String: Int] = [:]
        var addresses: [String] = []
        var firstSeen: [FrameRef] = []
        var lastSeen: [FrameRef] = []
        // The slot of every untracked address: no row, no claims, no links; findings charged to it
        // are counted as not listed.
        var untrackedSlot: Int?
        func index(_ a: String, _ first: FrameRef, _ last: FrameRef) -> Int {
            var a = a
            if let tracked, !tracked.contains(a.hashValue) {
                a = Self.untrackedKey
            }
            if let i = addressIndex[a] {
                if Self.before(first, firstSeen[i]) { firstSeen[i] = first }
                if Self.before(lastSeen[i], last) { lastSeen[i] = last }
                return i
            }
            addressIndex[a] = addresses.count
            addresses.append(a)
            firstSeen.append(first)
            lastSeen.append(last)
            if a == Self.untrackedKey { untrackedSlot = addresses.count - 1 }
            return addresses.count - 1
        }
        // The two ends (and stanza counts) of the connections later passes look up: those with a
        // finding to charge and those a dialback step was on. Kept for every connection, they
        // were the table's largest state on a capture of many quiet connections.
        // Address indexes as 32-bit values and stanzas only as "any": 12 bytes a connection.
        struct Ends {
            var client32: Int32, server32: Int32, stanzasSent: UInt8
            var client: Int { Int(client32) }
            var server: Int { Int(server32) }
            func sentStanzas(_ d: Direction) -> Bool { stanzasSent & (d == .clientToServer ? 1 : 2) != 0 }
        }
        var ends: [ConnectionID: Ends] = [:]
        let referenced = Self.referencedConnections(r)
        var claims: [Set<String>] = []
        var authenticated: [Set<String>] = []
        func claim(_ i: Int, _ domain: String?, authenticatedToo: Bool = false) {
            guard i != untrackedSlot, let d = domain.map(normalizedDomain), !d.isEmpty else { return }
            while claims.count <= i { claims.append([]); authenticated.append([]) }
            claims[i].insert(d)
            if authenticatedToo { authenticated[i].insert(d) }
        }
        // Per-address facts for the profile.
        struct Seen {
            var initiated = 0, accepted = 0, stanzas = 0
            var featuresBeforeTLS = 0, startTLSOffered = 0, startTLSRequired = 0
            var featuresSeen = 0, dialbackErrorsAdvertised = false, dialbackErrorsSent = false
            var bidiOffered = false, bidiRequested = false, bidiDeclined = false
            var tlsFeatures = 0, externalOffered = false, externalUsed = false
            var initialHeaders = 0, initialEmptyID = false
            var versions: Set<String> = []
            var stanzaDomains: Set<String> = []
        }
        var seen: [Int: Seen] = [:]
        // SASL success: the initiator that authenticated is originating, the acceptor receiving.
        var saslRoles: [Int: Set<String>] = [:]
        for c in r.connections where c.clientAddress != "?" {
            let last = c.closeFrame ?? c.lastFrame
            let ci = index(c.clientAddress, c.firstFrame, last)
            let si = index(c.serverAddress, c.firstFrame, last)
            for s in c.streams {
                let sender = s.direction == .clientToServer ? ci : si
                claim(sender, s.from)
                seen[sender, default: Seen()].versions.insert(s.version ?? "")
                if s.direction == .clientToServer {
                    seen[ci, default: Seen()].initialHeaders += 1
                    if s.id == "" { seen[ci, default: Seen()].initialEmptyID = true }
                }
            }
            for n in c.sasl where n.outcome == .success { claim(ci, n.domain, authenticatedToo: true) }
            if c.sasl.contains(where: { $0.outcome == .success }) {
                saslRoles[ci, default: []].insert("originating")
                saslRoles[si, default: []].insert("receiving")
            }
            let f = c.facts
            if referenced.contains(c.id) {
                ends[c.id] = Ends(client32: Int32(ci), server32: Int32(si),
                                  stanzasSent: (f.stanzas.clientToServer > 0 ? 1 : 0) | (f.stanzas.serverToClient > 0 ? 2 : 0))
            }
            seen[ci, default: Seen()].initiated += 1
            seen[ci, default: Seen()].stanzas += f.stanzas.clientToServer
            seen[si, default: Seen()].accepted += 1
            seen[si, default: Seen()].stanzas += f.stanzas.serverToClient
            if f.featuresBeforeTLS {
                seen[si, default: Seen()].featuresBeforeTLS += 1
                if f.startTLSOffered { seen[si, default: Seen()].startTLSOffered += 1 }
                if f.startTLSRequired { seen[si, default: Seen()].startTLSRequired += 1 }
            }
            if f.featuresBeforeTLS || f.featuresInTLS {
                seen[si, default: Seen()].featuresSeen += 1
                if f.dialbackErrorsOffered { seen[si, default: Seen()].dialbackErrorsAdvertised = true }
                if f.bidiOffered { seen[si, default: Seen()].bidiOffered = true }
                if f.bidiOffered && !f.bidiRequested { seen[ci, default: Seen()].bidiDeclined = true }
            }
            if f.bidiRequested { seen[ci, default: Seen()].bidiRequested = true }
            if f.featuresInTLS {
                seen[si, default: Seen()].tlsFeatures += 1
                if f.mechanisms.contains(where: { $0.uppercased() == "EXTERNAL" }) { seen[si, default: Seen()].externalOffered = true }
            }
            if c.sasl.contains(where: { $0.mechanism.uppercased() == "EXTERNAL" }) { seen[ci, default: Seen()].externalUsed = true }
            seen[ci, default: Seen()].stanzaDomains.formUnion(f.stanzaDomains.clientToServer)
            seen[si, default: Seen()].stanzaDomains.formUnion(f.stanzaDomains.serverToClient)
            if f.sentDialbackError.clientToServer { seen[ci, default: Seen()].dialbackErrorsSent = true }
            if f.sentDialbackError.serverToClient { seen[si, default: Seen()].dialbackErrorsSent = true }
        }
        func address(of c: ConnectionID, _ d: Direction) -> Int? {
            ends[c].map { d == .clientToServer ? $0.client : $0.server }.flatMap { $0 == untrackedSlot ? nil : $0 }
        }

        // Dialback: claims, roles, and the evidence that links addresses.
        var parent = Array(0..<addresses.count)
        func find(_ i: Int) -> Int {
            var i = i
            while parent[i] != i { parent[i] = parent[parent[i]]; i = parent[i] }
            return i
        }
        // Evidence links addresses as it is found (the components do not depend on the order);
        // only the first texts of each address are kept, which hold the first of any row.
        var evidenceCount = 0
        var evidenceShown: [Int: [(seq: Int, text: String)]] = [:]
        var evidenceTotal: [Int: Int] = [:]
        func link(_ a: Int, _ b: Int, _ text: @autoclosure () -> String) {
            let ra = find(a), rb = find(b)
            if ra != rb { parent[max(ra, rb)] = min(ra, rb) }
            evidenceTotal[a, default: 0] += 1
            if evidenceShown[a, default: []].count < Self.maxEvidenceListed { evidenceShown[a, default: []].append((evidenceCount, text())) }
            evidenceCount += 1
        }
        var refused: Set<[Int]> = []  // (authoritative, originating) pairs answered invalid
        for x in r.exchanges {
            if x.verifyType == "invalid", let z = addressIndex[x.authoritativeAddress ?? ""], let o = addressIndex[x.originatingAddress] {
                refused.insert([z, o])
            }
        }
        var roleOf = saslRoles
        // Per address, each exchange it took part in: number << 4 | role << 2 | outcome (8 bytes).
        var exchangesOf: [Int: [Int]] = [:]
        func taken(_ number: Int, _ role: Int, _ outcome: String?) -> Int {
            number << 4 | role << 2 | (outcome == nil ? 0 : outcome == "valid" ? 1 : outcome == "invalid" ? 2 : 3)
        }
        var resultConnectionsOf: [Int: Set<ConnectionID>] = [:]
        var verifySteps: [Int: [ConnectionID]] = [:]
        var replies: [Int: (n: Int, id: Bool, key: Bool)] = [:]
        for x in r.exchanges {
            let o = addressIndex[x.originatingAddress]
            let rs = addressIndex[x.receivingAddress]
            let auth = x.authoritativeAddress.flatMap { addressIndex[$0] }
            if let o {
                claim(o, x.originating, authenticatedToo: x.outcome == "valid")
                roleOf[o, default: []].insert("originating")
                exchangesOf[o, default: []].append(taken(x.number, 0, x.outcome))
                resultConnectionsOf[o, default: []].insert(x.resultConnection)
            }
            if let rs {
                roleOf[rs, default: []].insert("receiving")
                exchangesOf[rs, default: []].append(taken(x.number, 1, x.outcome))
                if x.outcome != nil { claim(rs, x.receiving) }
            }
            if let auth {
                roleOf[auth, default: []].insert("authoritative")
                exchangesOf[auth, default: []].append(taken(x.number, 2, x.outcome))
                if x.verifyType != nil { claim(auth, x.originating) }
            }
            for step in x.steps {
                guard let sender = address(of: step.connection, step.direction) else { continue }
                switch step.kind {
                case .verifyRequest: verifySteps[sender, default: []].append(step.connection)
                case .resultReply:
                    var t = replies[sender] ?? (0, false, false)
                    t.n += 1
                    t.id = t.id || step.carriesID
                    t.key = t.key || step.carriesKey
                    replies[sender] = t
                default: break
                }
            }
            let keyMatches = !x.key.isEmpty && x.verifyKey == x.key
            // One key space: the authoritative server confirmed the key the originating server sent.
            if let o, let auth, o != auth, keyMatches, x.verifyType == "valid", x.outcome == "valid", !refused.contains([auth, o]) {
                link(o, auth, "\(x.id): the authoritative server at \(addresses[auth]) confirmed as valid the key \(x.originating) sent from \(addresses[o]) (one dialback key space)")
            }
            // One stream-id generator: the verify carried the stream id the receiving server issued.
            if let rs, let step = x.steps.first(where: { $0.kind == .verifyRequest }), let w = address(of: step.connection, step.direction),
               w != rs, keyMatches, let sid = x.streamID, !sid.isEmpty, x.verifyStreamID == sid, x.outcome != nil, x.outcome == x.verifyType {
                link(rs, w, "\(x.id): the db:verify from \(addresses[w]) carried the stream id \(addresses[rs]) issued on \(x.resultConnection) with the key it received, and \(addresses[rs]) answered as the authoritative server said (one stream-id generator)")
            }
        }

        // Rows: connected components in order of first appearance.
        var members: [Int: [Int]] = [:]
        for i in 0..<addresses.count where i != untrackedSlot { members[find(i), default: []].append(i) }
        let groups = members.values.map { $0.sorted { Self.before(firstSeen[$0], firstSeen[$1]) || (firstSeen[$0] == firstSeen[$1] && $0 < $1) } }
            .sorted { Self.before(firstSeen[$0[0]], firstSeen[$1[0]]) || (firstSeen[$0[0]] == firstSeen[$1[0]] && $0[0] < $1[0]) }
        var rowOf: [Int: Int] = [:]
        for (k, g) in groups.enumerated() { for i in g { rowOf[i] = k } }
        while claims.count < addresses.count { claims.append([]); authenticated.append([]) }
        // Who else claims each domain (to say that a shared claim did not group them).
        var claimants: [String: Set<Int>] = [:]
        for (i, ds) in claims.enumerated() { guard let k = rowOf[i] else { continue }; for d in ds { claimants[d, default: []].insert(k) } }

        // Findings: each charged to the address the rule names, grouped by rule and severity.
        struct Key: Hashable { var row: Int; var rule: String; var severity: Severity }
        var found: [Key: ServerFinding] = [:]
        var order: [Key] = []
        var unattributed = 0
        var chargedUntracked = 0
        func charge(_ rule: String, _ severity: Severity, _ c: ConnectionID, _ d: Direction, _ actor: Actor,
                    count: Int, first: FrameRef, last: FrameRef) {
            guard let e = ends[c] else { unattributed += count; return }
            let a = actor == .initiator ? e.client : actor == .acceptor ? e.server : (d == .clientToServer ? e.client : e.server)
            if a == untrackedSlot { chargedUntracked += count; return }
            guard let row = rowOf[a] else { unattributed += count; return }
            let key = Key(row: row, rule: rule, severity: severity)
            if var f = found[key] {
                f.count += count
                if Self.before(first, f.first) { f.first = first }
                if Self.before(f.last, last) { f.last = last }
                if f.connections.last != c, f.connections.count < ServerFinding.maxConnectionsKept, !f.connections.contains(c) { f.connections.append(c) }
                found[key] = f
            } else {
                found[key] = ServerFinding(rule: rule, severity: severity, count: count, first: first, last: last,
                                           exampleConnection: c, exampleFrame: first, connections: [c])
                order.append(key)
            }
        }
        for v in r.violations {
            charge(v.rule, v.severity, v.connection, v.direction, v.actor, count: 1, first: v.frame, last: v.frame)
        }
        for u in r.unlistedViolations {
            charge(u.rule, u.severity, u.connection, u.direction, u.actor, count: u.count, first: u.first, last: u.last)
        }

        // Which servers get a row (all of them unless there are more than maxRowsListed).
        var listed = Array(groups.indices)
        if groups.count > max(0, maxRowsListed) {
            var worst: [Int: Int] = [:], total: [Int: Int] = [:]
            for (key, f) in found {
                worst[key.row] = max(worst[key.row] ?? 0, key.severity.rawValue + 1)
                total[key.row, default: 0] += f.count
            }
            let connections = groups.map { g in g.reduce(0) { $0 + (seen[$1]?.initiated ?? 0) + (seen[$1]?.accepted ?? 0) } }
            listed = groups.indices.sorted { a, b in
                let ka = (worst[a] ?? 0, total[a] ?? 0, connections[a]), kb = (worst[b] ?? 0, total[b] ?? 0, connections[b])
                return ka != kb ? ka > kb : a < b
            }
            listed = Array(listed.prefix(max(0, maxRowsListed))).sorted()
        }
        var listedRow: [Int: Int] = [:]
        for (n, k) in listed.enumerated() { listedRow[k] = n }

        var rows: [ServerRow] = []
        rows.reserveCapacity(listed.count)
        for k in listed {
            let g = groups[k]
            let domains = g.reduce(into: Set<String>()) { $0.formUnion(claims[$1]) }.sorted()
            let auth = g.reduce(into: Set<String>()) { $0.formUnion(authenticated[$1]) }.sorted()
            let first = g.map { firstSeen[$0] }.min { Self.before($0, $1) }!
            let last = g.map { lastSeen[$0] }.max { Self.before($0, $1) }!
            var row = ServerRow(id: "S\(k + 1)", number: k + 1, domains: Array(domains.prefix(Self.maxDomainsListed)),
                                authenticatedDomains: Array(auth.prefix(Self.maxDomainsListed)),
                                addresses: g.map { addresses[$0] }, grouping: "", roles: [], firstSeen: first, lastSeen: last)
            row.domainsNotListed = max(0, domains.count - Self.maxDomainsListed)
            let roles = g.reduce(into: Set<String>()) { $0.formUnion(roleOf[$1] ?? []) }
            row.roles = ["originating", "receiving", "authoritative"].filter { roles.contains($0) }

            // Dialback exchanges in any role (each once), and by role.
            let roleNames = ["originating", "receiving", "authoritative"]
            let outcomes: [String?] = [nil, "valid", "invalid", "error"]
            var byNumber: [Int: String?] = [:]
            var byRole: [String: [Int: String?]] = [:]
            for i in g {
                for e in exchangesOf[i] ?? [] {
                    let number = e >> 4, outcome = outcomes[e & 3]
                    byNumber[number] = outcome
                    byRole[roleNames[(e >> 2) & 3], default: [:]][number] = outcome
                }
            }
            for (_, outcome) in byNumber { row.dialbacks.add(outcome) }
            row.exchanges = byNumber.keys.sorted()
            for role in row.roles {
                var counts = OutcomeCounts()
                for (_, outcome) in byRole[role] ?? [:] { counts.add(outcome) }
                row.dialbacksByRole.append((role, counts))
            }

            // Profile.
            var s = Seen()
            for i in g {
                guard let v = seen[i] else { continue }
                s.initiated += v.initiated; s.accepted += v.accepted; s.stanzas += v.stanzas
                s.featuresBeforeTLS += v.featuresBeforeTLS; s.startTLSOffered += v.startTLSOffered; s.startTLSRequired += v.startTLSRequired
                s.featuresSeen += v.featuresSeen; s.tlsFeatures += v.tlsFeatures; s.initialHeaders += v.initialHeaders
                s.dialbackErrorsAdvertised = s.dialbackErrorsAdvertised || v.dialbackErrorsAdvertised
                s.dialbackErrorsSent = s.dialbackErrorsSent || v.dialbackErrorsSent
                s.bidiOffered = s.bidiOffered || v.bidiOffered
                s.bidiRequested = s.bidiRequested || v.bidiRequested
                s.bidiDeclined = s.bidiDeclined || v.bidiDeclined
                s.externalOffered = s.externalOffered || v.externalOffered
                s.externalUsed = s.externalUsed || v.externalUsed
                s.initialEmptyID = s.initialEmptyID || v.initialEmptyID
                s.versions.formUnion(v.versions)
                s.stanzaDomains.formUnion(v.stanzaDomains)
            }
            row.stanzaDomains = Array(s.stanzaDomains.sorted().prefix(Self.maxDomainsListed))
            row.connectionsInitiated = s.initiated
            row.connectionsAccepted = s.accepted
            row.stanzasSent = s.stanzas
            var p = ServerProfile()
            let own = g.reduce(into: Set<ConnectionID>()) { $0.formUnion(resultConnectionsOf[$1] ?? []) }
            for i in g {
                for c in verifySteps[i] ?? [] {
                    let side: Direction = ends[c].map { $0.client == i ? .clientToServer : .serverToClient } ?? .clientToServer
                    let carriedOwnTraffic = own.contains(c) || ends[c]?.sentStanzas(side) == true
                    if carriedOwnTraffic { p.verifyConnections.reverse += 1 } else { p.verifyConnections.separate += 1 }
                }
            }
            switch (p.verifyConnections.separate > 0, p.verifyConnections.reverse > 0) {
            case (true, true): p.verifyConnection = "mixed"
            case (true, false): p.verifyConnection = "separate"
            case (false, true): p.verifyConnection = "reverse"
            case (false, false): p.verifyConnection = "unseen"
            }
            p.dialbackErrorsSent = s.dialbackErrorsSent
            p.dialbackErrorsAdvertised = s.featuresSeen > 0 ? s.dialbackErrorsAdvertised : nil
            p.dialbackErrors = s.dialbackErrorsAdvertised || s.dialbackErrorsSent ? true : (s.featuresSeen > 0 ? false : nil)
            if s.featuresBeforeTLS > 0 {
                p.startTLS = s.startTLSRequired == s.featuresBeforeTLS ? "required" : s.startTLSOffered > 0 ? "offered" : "absent"
            }
            p.bidi = s.bidiOffered || s.bidiRequested ? true : (s.featuresSeen > 0 || s.bidiDeclined ? false : nil)
            p.saslExternal = s.externalOffered || s.externalUsed ? true : (s.tlsFeatures > 0 ? false : nil)
            p.initialHeaderEmptyID = s.initialHeaders > 0 ? s.initialEmptyID : nil
            let answers = g.compactMap { replies[$0] }
            if answers.reduce(0, { $0 + $1.n }) > 0 {
                p.typedResultID = answers.contains { $0.id }
                p.typedResultKey = answers.contains { $0.key }
            }
            p.streamVersions = s.versions.sorted()
            row.profile = p

            // Grouping, said in words.
            var why: [String] = []
            if g.count == 1 {
                why.append("one address (\(addresses[g[0]]))")
            } else {
                let total = g.reduce(0) { $0 + (evidenceTotal[$1] ?? 0) }
                let shown = g.flatMap { evidenceShown[$0] ?? [] }.sorted { $0.seq < $1.seq }.prefix(Self.maxEvidenceListed).map(\.text)
                why.append("addresses \(row.addresses.joined(separator: ", ")) are one server: " + shown.joined(separator: "; ")
                           + (total > shown.count ? "; and \(total - shown.count) more" : ""))
            }
            if domains.isEmpty {
                why.append("it claimed no domain (no stream header 'from', no dialback)"
                           + (row.stanzaDomains.isEmpty ? "" : "; its stanzas came from \(row.stanzaDomains.joined(separator: ", "))"))
            } else if domains.count > 1 {
                why.append("\(domains.count) domains claimed at \(g.count == 1 ? "this address" : "these addresses")")
            }
            let shared = domains.filter { (claimants[$0]?.count ?? 0) > 1 }
            for d in shared.prefix(Self.maxEvidenceListed) {
                let others = (claimants[d] ?? []).subtracting([k]).sorted().map { "S\($0 + 1)" }
                why.append("\(d) is also claimed by \(others.joined(separator: ", ")), which nothing in the capture links to this server")
            }
            if shared.count > Self.maxEvidenceListed { why.append("\(shared.count - Self.maxEvidenceListed) more domains are claimed elsewhere too") }
            row.grouping = why.joined(separator: "; ")
            rows.append(row)
        }

        var worstOfRule: [String: Severity] = [:]
        var findingsNotListed = chargedUntracked
        for key in order {
            guard let f = found[key] else { continue }
            guard let n = listedRow[key.row] else { findingsNotListed += f.count; continue }
            rows[n].findings.append(f)
            worstOfRule[key.rule] = max(worstOfRule[key.rule] ?? .info, key.severity)
        }
        for k in rows.indices {
            rows[k].findings.sort { ($0.severity, $1.rule) > ($1.severity, $0.rule) }
        }
        self.rows = rows
        self.unattributed = unattributed
        self.rowsNotListed = groups.count - listed.count + (tracked.map { addressCount - $0.count } ?? 0)
        self.findingsNotListed = findingsNotListed
        rules = worstOfRule.keys.sorted { (worstOfRule[$0]!, $1) > (worstOfRule[$1]!, $0) }
    }

    static let untrackedKey = "\u{0}untracked"

    /// The connections a finding or a dialback step names.
    static func referencedConnections(_ r: AnalysisReport) -> Set<ConnectionID> {
        var ids = Set(r.violations.map(\.connection))
        for u in r.unlistedViolations { ids.insert(u.connection) }
        for x in r.exchanges {
            ids.insert(x.resultConnection)
            for step in x.steps { ids.insert(step.connection) }
        }
        return ids
    }

    /// The addresses that get state of their own (nil: all of them), by their `hashValue`, and how
    /// many addresses there are: past `limit`, those with the worst findings, then the most
    /// findings, then the most connections, then first seen.
    ///
    /// Per address only a connection count is kept, under the address's 64-bit hash (12 bytes a
    /// slot, where a string key and its score took 48 and a sorted copy as much again: 9 MB of
    /// resident memory at 100,000 addresses); two addresses whose hashes collide (about 1 in 10⁹
    /// at 100,000 addresses) would count as one. Ties are decided by a second pass in capture
    /// order, and only when there are more addresses than `limit`.
    static func trackedAddresses(_ r: AnalysisReport, limit: Int) -> (tracked: Set<Int>?, addresses: Int) {
        var connectionsOf: [Int: UInt32] = [:]
        // The two ends only of connections with findings (few, where the addresses are many).
        var withFindings = Set(r.violations.map(\.connection))
        for u in r.unlistedViolations { withFindings.insert(u.connection) }
        var endsOf: [ConnectionID: (client: String, server: String)] = [:]
        for c in r.connections where c.clientAddress != "?" {
            if withFindings.contains(c.id) { endsOf[c.id] = (c.clientAddress, c.serverAddress) }
            connectionsOf[c.clientAddress.hashValue, default: 0] &+= 1
            connectionsOf[c.serverAddress.hashValue, default: 0] &+= 1
        }
        guard connectionsOf.count > limit else { return (nil, connectionsOf.count) }
        struct Rank: Hashable, Comparable {
            var worst = 0, findings = 0, connections: UInt32 = 0
            static func < (a: Rank, b: Rank) -> Bool { (a.worst, a.findings, a.connections) < (b.worst, b.findings, b.connections) }
        }
        var charged: [Int: Rank] = [:]
        func charge(_ c: ConnectionID, _ d: Direction, _ actor: Actor, _ severity: Severity, _ count: Int) {
            guard let e = endsOf[c] else { return }
            let a = chargedAddress((actor: actor, direction: d), client: e.client, server: e.server).hashValue
            guard let n = connectionsOf[a] else { return }
            var v = charged[a] ?? Rank(connections: n)
            v.worst = max(v.worst, severity.rawValue + 1)
            v.findings += count
            charged[a] = v
        }
        for v in r.violations { charge(v.connection, v.direction, v.actor, v.severity, 1) }
        for u in r.unlistedViolations { charge(u.connection, u.direction, u.actor, u.severity, u.count) }
        func rank(_ a: Int) -> Rank { charged[a] ?? Rank(connections: connectionsOf[a] ?? 0) }

        // The rank of the last address taken (`threshold`): every address above it is taken, and
        // of those at it the first `tied` seen.
        var atRank: [Rank: Int] = [:]
        for (_, v) in charged { atRank[v, default: 0] += 1 }
        var quiet: [UInt32: Int] = [:]
        for (a, n) in connectionsOf where charged[a] == nil { quiet[n, default: 0] += 1 }
        for (n, k) in quiet { atRank[Rank(connections: n), default: 0] += k }
        var threshold = Rank()
        var above = 0
        for (v, k) in atRank.sorted(by: { $0.key > $1.key }) {
            threshold = v
            if above + k >= limit { break }
            above += k
        }
        var tied = limit - above
        var tracked = Set<Int>()
        tracked.reserveCapacity(limit)
        for c in r.connections where c.clientAddress != "?" {
            for a in [c.clientAddress.hashValue, c.serverAddress.hashValue] where !tracked.contains(a) {
                let v = rank(a)
                if v > threshold {
                    tracked.insert(a)
                } else if v == threshold && tied > 0 {
                    tracked.insert(a)
                    tied -= 1
                }
            }
        }
        return (tracked, connectionsOf.count)
    }

    /// Capture order: input, then frame number.
    static func before(_ a: FrameRef, _ b: FrameRef) -> Bool { (a.input, a.number) < (b.input, b.number) }
}
