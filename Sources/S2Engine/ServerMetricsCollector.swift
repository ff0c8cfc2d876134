import S2Dialback
import S2Model
import S2Report
import S2Rules

/// Feeds a `ServerViolationCounters` from a running engine (`live --metrics`): the bytes each
/// side of each connection sends (traffic, which decides the labelled servers) and every finding,
/// charged to the side its rule names — the initiator or acceptor when the actor is one of them,
/// otherwise the sender of the finding's direction — under that side's server name
/// (`ServerViolationCounters.serverKey`).
///
/// Bytes are summed per connection as they come (one dictionary update per piece of stream data)
/// and handed to the sketch with the connection's current names at each exposition and when the
/// connection closes, because the names are known only once the stream headers and dialback were
/// seen. Memory: the open connections' byte counts, the sketch, the counters, and the names of
/// the last `recentlyClosedKept` closed connections (a finding judged after its connection was
/// forgotten, such as a late cross-connection verdict, is still charged by name).
public final class ServerMetricsCollector {
    public let counters: ServerViolationCounters
    private unowned let engine: Engine
    private var pendingBytes: [ConnectionID: PerDirection<Int>] = [:]
    private var recentlyClosed: [ConnectionID: PerDirection<String>] = [:]
    private var closedOrder: [ConnectionID] = []
    private var closedHead = 0
    public static let recentlyClosedKept = 4096

    /// Attaches to `engine`'s hooks (after any `onConnectionClosed` already set, which it chains).
    public init(engine: Engine, maxServers: Int) {
        self.engine = engine
        counters = ServerViolationCounters(maxServers: maxServers)
        engine.onStreamBytes = { [unowned self] id, d, n in
            if pendingBytes[id] == nil { pendingBytes[id] = PerDirection(repeating: 0) }
            pendingBytes[id]![d] += n
        }
        engine.onFinding = { [unowned self] rule, severity, id, d, actor in
            let side: Direction = actor == .initiator ? .clientToServer : actor == .acceptor ? .serverToClient : d
            flush(id)  // its traffic so far, so that the sketch knows the server
            counters.count(server: name(of: id, side), rule: rule, severity: severity)
        }
        let previous = engine.onConnectionClosed
        engine.onConnectionClosed = { [unowned self] c, tls in
            closed(c)
            previous?(c, tls)
        }
    }

    func name(of id: ConnectionID, _ d: Direction) -> String {
        if let c = engine.analyzer.model.connection(id) { return ServerViolationCounters.serverKey(c, d) }
        return recentlyClosed[id]?[d] ?? ServerViolationCounters.other
    }

    private func closed(_ c: ConnectionModel) {
        let names = PerDirection(ServerViolationCounters.serverKey(c, .clientToServer), ServerViolationCounters.serverKey(c, .serverToClient))
        if let b = pendingBytes.removeValue(forKey: c.id) {
            counters.addTraffic(names.clientToServer, b.clientToServer)
            counters.addTraffic(names.serverToClient, b.serverToClient)
        }
        if recentlyClosed[c.id] == nil { closedOrder.append(c.id) }
        recentlyClosed[c.id] = names
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
        guard let b = pendingBytes[id], let c = engine.analyzer.model.connection(id) else { return }
        pendingBytes[id] = nil
        counters.addTraffic(ServerViolationCounters.serverKey(c, .clientToServer), b.clientToServer)
        counters.addTraffic(ServerViolationCounters.serverKey(c, .serverToClient), b.serverToClient)
    }

    /// Hands the bytes counted since the last call to the sketch under the connections' current names.
    public func flush() {
        for (id, b) in pendingBytes {
            guard let c = engine.analyzer.model.connection(id) else { continue }
            counters.addTraffic(ServerViolationCounters.serverKey(c, .clientToServer), b.clientToServer)
            counters.addTraffic(ServerViolationCounters.serverKey(c, .serverToClient), b.serverToClient)
        }
        // Connections the engine no longer knows (closed without XMPP) are dropped with their bytes.
        pendingBytes.removeAll(keepingCapacity: true)
    }

    /// The counter in the Prometheus text format, after the traffic so far was ranked at `now`
    /// (seconds, any epoch: only differences count).
    public func exposition(now: Double) -> String {
        flush()
        counters.rerank(now: now)
        return counters.exposition()
    }
}
