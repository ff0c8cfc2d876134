#if canImport(Glibc)
import Glibc
#endif
import S2Dialback
import S2Model
import S2Rules
import S2XMPP

/// Violations per server, rule and severity for a metrics exposition whose label set stays
/// bounded however many peers a sensor sees (`s2scope_violations_total{server,rule,severity}`).
///
/// - At most `maxServers` servers have a `server` label of their own: the top ones by traffic.
///   Every other server's violations count under `server="other"`. So the `server` label takes at
///   most `maxServers + 1` values, and the series number at most `(maxServers + 1)` × the
///   (rule, severity) pairs that occurred (rules come from the catalog, never from the wire).
/// - Traffic is estimated with a Space-Saving sketch of `sketchCapacity` counters (Metwally et al.,
///   2005): any server with more than 1/`sketchCapacity` of all traffic is in it, whatever the
///   number of peers; memory is O(`sketchCapacity`). Servers are ranked by the traffic they are
///   known to have sent (the count minus what their slot inherited), so a newcomer that took a
///   slot is not taken for a heavy one. Counts halve every `halfLife` seconds, so the ranking
///   follows current traffic, not the traffic of last week.
/// - `rerank(now:)` (called before each exposition) gives free labels to the heaviest servers
///   and lets a server take a labelled one's place only when its traffic is at least
///   `displaceFactor` times the weakest labelled server's (no flapping between near equals).
///   While labels are free, a server with traffic that breaks a rule gets one at once.
/// - Every series is a monotone counter while it exists: a newly labelled server's series counts
///   from its promotion (what it did before stays in `other`), and a server that loses its label
///   loses its series (its later violations count under `other`). Per-series `rate()` is right
///   across such changes; a sum of raw counters over servers is not (as for any label churn).
public final class ServerViolationCounters {
    public static let other = "other"
    public let maxServers: Int
    public let sketchCapacity: Int
    public var halfLife: Double = 300
    public var displaceFactor: Double = 1.5

    public struct Series: Hashable, Sendable {
        public var server: String
        public var rule: String
        public var severity: Severity
        public init(server: String, rule: String, severity: Severity) {
            self.server = server
            self.rule = rule
            self.severity = severity
        }
    }

    public private(set) var counters: [Series: Int] = [:]
    /// Servers with a label of their own.
    public private(set) var labelled: Set<String> = []
    public private(set) var total = 0

    // Space-Saving: slots with a key and a count, a min-heap of slots by count, an index by key.
    private var keys: [String] = []
    private var counts: [Double] = []
    /// The count a slot inherited when its server replaced another: `counts - errors` is a lower
    /// bound of the server's own traffic, what the ranking uses (a newcomer's inherited count says
    /// nothing about it).
    private var errors: [Double] = []
    private var heap: [Int] = []
    private var position: [Int] = []
    private var slotOf: [String: Int] = [:]
    private var lastDecay: Double?

    public init(maxServers: Int = 50, sketchCapacity: Int? = nil) {
        self.maxServers = max(0, maxServers)
        self.sketchCapacity = max(sketchCapacity ?? 4 * maxServers, self.maxServers, 16)
    }

    /// The label a server's violations count under now.
    public func label(of server: String) -> String { labelled.contains(server) ? server : Self.other }

    /// `amount` more traffic (bytes) from `server`.
    public func addTraffic(_ server: String, _ amount: Int) {
        guard amount > 0 else { return }
        let w = Double(amount)
        if let s = slotOf[server] {
            counts[s] += w
            siftDown(position[s])
        } else if keys.count < sketchCapacity {
            let s = keys.count
            keys.append(server)
            counts.append(w)
            errors.append(0)
            position.append(heap.count)
            heap.append(s)
            slotOf[server] = s
            siftUp(heap.count - 1)
        } else {
            // Replace the lightest: the newcomer inherits its count (Space-Saving's over-estimate).
            let s = heap[0]
            slotOf[keys[s]] = nil
            keys[s] = server
            errors[s] = counts[s]
            counts[s] += w
            slotOf[server] = s
            siftDown(0)
        }
    }

    /// One violation of `rule` at `severity` by `server`. While labels are free, a server with
    /// traffic gets one at once (a sensor that just started has not ranked anyone yet).
    public func count(server: String, rule: String, severity: Severity) {
        if labelled.count < maxServers, !labelled.contains(server), slotOf[server] != nil { labelled.insert(server) }
        counters[Series(server: label(of: server), rule: rule, severity: severity), default: 0] += 1
        total += 1
    }

    /// The traffic `server` is known to have sent at least (0 when it is not among the tracked ones).
    public func traffic(of server: String) -> Double { slotOf[server].map { counts[$0] - errors[$0] } ?? 0 }

    /// Servers whose traffic the sketch tracks now (at most `sketchCapacity`).
    public var trackedServers: Int { keys.count }

    /// Scales the traffic counts down by 2^(-elapsed / `halfLife`) since the last call, then gives the
    /// labels to the heaviest servers (see the type's documentation).
    public func rerank(now: Double) {
        if let last = lastDecay, now > last {
            let f = exp2(-(now - last) / halfLife)
            for i in counts.indices {  // a uniform scale keeps the heap ordered
                counts[i] *= f
                errors[i] *= f
            }
        }
        if lastDecay.map({ now > $0 }) ?? true { lastDecay = now }
        // Labelled servers no longer tracked have no current traffic: they go first.
        for s in labelled where slotOf[s] == nil { demote(s) }
        let lower = keys.indices.map { counts[$0] - errors[$0] }
        let ranked = keys.indices.sorted { lower[$0] != lower[$1] ? lower[$0] > lower[$1] : keys[$0] < keys[$1] }.map { keys[$0] }
        for candidate in ranked.prefix(maxServers) where !labelled.contains(candidate) {
            let weight = traffic(of: candidate)
            guard weight > 0 else { break }
            if labelled.count < maxServers {
                labelled.insert(candidate)
                continue
            }
            guard let weakest = labelled.min(by: { (traffic(of: $0), $0) < (traffic(of: $1), $1) }),
                  weight >= displaceFactor * traffic(of: weakest) else { continue }
            demote(weakest)
            labelled.insert(candidate)
        }
    }

    private func demote(_ server: String) {
        labelled.remove(server)
        for k in counters.keys where k.server == server { counters[k] = nil }
    }

    /// The series now, sorted by server (`other` last), rule and severity.
    public var samples: [(series: Series, value: Int)] {
        counters.map { ($0.key, $0.value) }.sorted {
            let a = $0.series, b = $1.series
            if a.server != b.server { return a.server == Self.other ? false : b.server == Self.other ? true : a.server < b.server }
            return a.rule != b.rule ? a.rule < b.rule : a.severity > b.severity
        }
    }

    /// The counter in Prometheus text exposition format.
    public func exposition(name: String = "s2scope_violations_total") -> String {
        var o = "# HELP \(name) Violations by server (the top \(maxServers) by traffic have their own label, the rest count as server=\"other\"), rule and severity.\n"
        o += "# TYPE \(name) counter\n"
        for (s, v) in samples {
            o += "\(name){server=\"\(Self.escape(s.server))\",rule=\"\(Self.escape(s.rule))\",severity=\"\(s.severity.name)\"} \(v)\n"
        }
        return o
    }

    /// A label value in the text format: backslash, double quote and line feed escaped; other
    /// control characters (never in a domain, possible in hostile bytes) shown as `\xNN`.
    public static func escape(_ v: String) -> String {
        var out = ""
        for u in v.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default:
                if u.value < 0x20 || u.value == 0x7f {
                    let hex = String(u.value, radix: 16)
                    out += "\\\\x" + (hex.count == 1 ? "0" : "") + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out
    }

    /// The server a side of a connection is, as a label: the domain it authenticated (dialback
    /// or SASL), else the `from` of its stream header, else (acceptor) the `to` it was addressed
    /// with, else the domain of its stanzas, else its address; normalised, at most 253 characters.
    public static func serverKey(_ c: ConnectionModel, _ d: Direction) -> String {
        var name: String?
        if let v = c.validatedSenders(d).min() { name = v }
        if name == nil, let f = c.header(d)?.from, !f.isEmpty { name = normalizedDomain(f) }
        if name == nil, d == .serverToClient, let t = c.initialHeader?.to, !t.isEmpty { name = normalizedDomain(t) }
        if name == nil { name = c.stanzaDomains[d].first }
        let key = name ?? c.address(of: d)
        return key.count > 253 ? String(key.prefix(253)) : key
    }

    // MARK: the heap

    private func less(_ i: Int, _ j: Int) -> Bool { counts[heap[i]] < counts[heap[j]] }

    private func swapAt(_ i: Int, _ j: Int) {
        heap.swapAt(i, j)
        position[heap[i]] = i
        position[heap[j]] = j
    }

    private func siftUp(_ i: Int) {
        var i = i
        while i > 0 {
            let p = (i - 1) / 2
            guard less(i, p) else { return }
            swapAt(i, p)
            i = p
        }
    }

    private func siftDown(_ i: Int) {
        var i = i
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count && less(l, m) { m = l }
            if r < heap.count && less(r, m) { m = r }
            if m == i { return }
            swapAt(i, m)
            i = m
        }
    }
}
