import S2Dialback
import S2Model
import S2Rules
import S2XMPP

/// Names the server behind each finding and each byte of a running engine (`live --metrics`):
/// the bytes each side of each connection sends (traffic, which decides the servers with a label
/// of their own) and every finding, listed or not, charged to the side its rule names — the
/// initiator or acceptor when the actor is one of them, otherwise the sender of the finding's
/// direction — under that side's name (`serverName`). What is done with them is the caller's
/// (`onTraffic`, `onFinding`; `live` hands them to the metrics publisher).
///
/// Bytes are summed per connection as they come (one dictionary update per piece of stream data)
/// and handed on with the connection's current names at each `flush()`, before a finding of that
/// connection, and when it closes: the names are known only once stream headers and dialback were
/// seen. Memory: the open connections' byte counts and the names of the last `recentlyClosedKept`
/// closed connections (a finding judged after its connection was forgotten, such as a late
/// cross-connection verdict, is still charged by name).
public final class ServerAttribution {
    public var onTraffic: ((_ server: String, _ bytes: Int) -> Void)?
    public var onFinding: ((_ server: String, _ rule: String, _ severity: Severity) -> Void)?
    public static let unknown = "other"
    private unowned let engine: Engine
    private var pendingBytes: [ConnectionID: PerDirection<Int>] = [:]
    private var recentlyClosed: [ConnectionID: PerDirection<String>] = [:]
    private var closedOrder: [ConnectionID] = []
    private var closedHead = 0
    public static let recentlyClosedKept = 4096

    /// Attaches to `engine`'s hooks (after any `onConnectionClosed` already set, which it chains).
    public init(engine: Engine) {
        self.engine = engine
        engine.onStreamBytes = { [unowned self] id, d, n in
            if pendingBytes[id] == nil { pendingBytes[id] = PerDirection(repeating: 0) }
            pendingBytes[id]![d] += n
        }
        engine.onFinding = { [unowned self] rule, severity, id, d, actor in
            let side: Direction = actor == .initiator ? .clientToServer : actor == .acceptor ? .serverToClient : d
            flush(id)  // its traffic so far, so that the server is known by its traffic
            onFinding?(name(of: id, side), rule, severity)
        }
        let previous = engine.onConnectionClosed
        engine.onConnectionClosed = { [unowned self] c, tls in
            closed(c)
            previous?(c, tls)
        }
    }

    /// The server a side of a connection is, by name: the domain it authenticated (dialback or
    /// SASL; the first in order when several), else the `from` of its stream header, else
    /// (acceptor) the `to` it was addressed with, else the domain of its stanzas (a connection
    /// picked up mid-stream), else its address; normalised.
    public static func serverName(_ c: ConnectionModel, _ d: Direction) -> String {
        if let v = c.validatedSenders(d).min() { return v }
        if let f = c.header(d)?.from, !f.isEmpty { return normalizedDomain(f) }
        if d == .serverToClient, let t = c.initialHeader?.to, !t.isEmpty { return normalizedDomain(t) }
        if let s = c.stanzaDomains[d].first { return s }
        return c.address(of: d)
    }

    /// Names come from the connection-rules model: each event reaches it before the correlator's,
    /// so a finding judged on that event (an initial header's id='', say) already sees the
    /// header's names there, not yet in the correlator's model.
    func name(of id: ConnectionID, _ d: Direction) -> String {
        if let c = engine.connectionRules.model.connection(id) { return Self.serverName(c, d) }
        // Not `recentlyClosed[id]?[d] ?? …`: Swift 6.3.1 crashes (SILGenCleanup ownership error)
        // on an optional chain into PerDirection's _read accessor inside `??`.
        guard let names = recentlyClosed[id] else { return Self.unknown }
        return names[d]
    }

    private func hand(_ c: ConnectionModel, _ b: PerDirection<Int>) {
        onTraffic?(Self.serverName(c, .clientToServer), b.clientToServer)
        onTraffic?(Self.serverName(c, .serverToClient), b.serverToClient)
    }

    private func closed(_ c: ConnectionModel) {
        if let b = pendingBytes.removeValue(forKey: c.id) { hand(c, b) }
        if recentlyClosed[c.id] == nil { closedOrder.append(c.id) }
        recentlyClosed[c.id] = PerDirection(Self.serverName(c, .clientToServer), Self.serverName(c, .serverToClient))
        while closedOrder.count - closedHead > Self.recentlyClosedKept {
            recentlyClosed[closedOrder[closedHead]] = nil
            closedHead += 1
        }
        if closedHead > 4096 && closedHead * 2 > closedOrder.count {
            closedOrder.removeFirst(closedHead)
            closedHead = 0
        }
    }

    private func flush(_ id: ConnectionID) {
        guard let b = pendingBytes[id], let c = engine.connectionRules.model.connection(id) else { return }
        pendingBytes[id] = nil
        hand(c, b)
    }

    /// Hands on the bytes counted since the last call, under the connections' current names.
    public func flush() {
        for (id, b) in pendingBytes {
            guard let c = engine.connectionRules.model.connection(id) else { continue }
            hand(c, b)
        }
        // Connections the engine no longer knows (closed without XMPP) are dropped with their bytes.
        pendingBytes.removeAll(keepingCapacity: true)
    }
}
