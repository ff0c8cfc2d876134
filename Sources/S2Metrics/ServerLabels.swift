#if canImport(Glibc)
import Glibc
#endif

/// Which servers get a `server` label of their own in `s2scope_violations_total{server,rule,severity}`,
/// so that the label set stays bounded however many peers a sensor sees (issue #18).
///
/// - At most `maxServers` servers have a label of their own: the top ones by traffic. Every other
///   server counts as `other`. So the `server` label takes at most `maxServers + 1` values, and the
///   metric has at most `(maxServers + 1)` × the (rule, severity) pairs that occurred (rule IDs come
///   from the catalog, never from the wire).
/// - Traffic is estimated with a Space-Saving sketch of `sketchCapacity` counters (Metwally, Agrawal
///   and El Abbadi, 2005): any server with more than 1/`sketchCapacity` of all traffic is in it,
///   whatever the number of peers, and memory is O(`sketchCapacity`). Servers are ranked by the
///   traffic they are known to have sent (the count minus what their slot inherited when they took
///   it), so a newcomer that took a slot is not taken for a heavy one. Counts decay with a half-life
///   of `halfLife` seconds, so the ranking follows current traffic, not last week's.
/// - `rerank(now:)` gives free labels to the heaviest servers and lets a server take a labelled
///   one's place only when its traffic is at least `displaceFactor` times the weakest labelled
///   server's (no flapping between near equals). While labels are free, a server with traffic
///   that breaks a rule gets one at once (`labelForFinding`): a sensor that just started has ranked
///   no one yet.
///
/// Who uses the labels decides what a change means for the series; `MetricsPublisher` drops a
/// server's series when it loses its label and starts them from zero when it gets one, so every
/// series is a monotone counter while it exists.
public final class ServerLabels {
    public static let other = "other"
    public let maxServers: Int
    public let sketchCapacity: Int
    public var halfLife: Double = 300
    public var displaceFactor: Double = 1.5

    /// Servers with a label of their own.
    public private(set) var labelled: Set<String> = []

    // Space-Saving: slots with a key, a count and what the slot inherited; a min-heap of slots
    // by count; an index by key.
    private var keys: [String] = []
    private var counts: [Double] = []
    private var errors: [Double] = []
    private var heap: [Int] = []
    private var position: [Int] = []
    private var slotOf: [String: Int] = [:]
    private var lastDecay: Double?

    public init(maxServers: Int = 50, sketchCapacity: Int? = nil) {
        self.maxServers = max(0, maxServers)
        self.sketchCapacity = max(sketchCapacity ?? 4 * maxServers, self.maxServers, 16)
    }

    /// The label `server`'s findings count under now.
    public func label(of server: String) -> String { labelled.contains(server) ? server : Self.other }

    /// The label for a finding of `server`: its own when it has one, or when a label is free and the
    /// sketch knows its traffic (it then keeps it); `other` otherwise.
    public func labelForFinding(_ server: String) -> String {
        if !labelled.contains(server), labelled.count < maxServers, slotOf[server] != nil { labelled.insert(server) }
        return label(of: server)
    }

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

    /// The traffic `server` is known to have sent at least (0 when the sketch does not track it).
    public func traffic(of server: String) -> Double { slotOf[server].map { counts[$0] - errors[$0] } ?? 0 }

    /// Servers whose traffic the sketch tracks now (at most `sketchCapacity`).
    public var trackedServers: Int { keys.count }

    /// Scales the traffic counts by 2^(-elapsed / `halfLife`) since the last call, then gives the
    /// labels to the heaviest servers (see the type's documentation). Returns the servers that lost
    /// their label and those that got one.
    @discardableResult
    public func rerank(now: Double) -> (demoted: [String], promoted: [String]) {
        if let last = lastDecay, now > last {
            let f = exp2(-(now - last) / halfLife)
            for i in counts.indices {  // a uniform scale keeps the heap ordered
                counts[i] *= f
                errors[i] *= f
            }
        }
        if lastDecay.map({ now > $0 }) ?? true { lastDecay = now }
        var demoted: [String] = [], promoted: [String] = []
        // Labelled servers the sketch no longer tracks have no current traffic: they go first.
        for s in labelled where slotOf[s] == nil {
            labelled.remove(s)
            demoted.append(s)
        }
        let lower = keys.indices.map { counts[$0] - errors[$0] }
        let ranked = keys.indices.sorted { lower[$0] != lower[$1] ? lower[$0] > lower[$1] : keys[$0] < keys[$1] }.map { keys[$0] }
        for candidate in ranked.prefix(maxServers) where !labelled.contains(candidate) {
            let weight = traffic(of: candidate)
            guard weight > 0 else { break }
            if labelled.count < maxServers {
                labelled.insert(candidate)
                promoted.append(candidate)
                continue
            }
            guard let weakest = labelled.min(by: { (traffic(of: $0), $0) < (traffic(of: $1), $1) }),
                  weight >= displaceFactor * traffic(of: weakest) else { continue }
            labelled.remove(weakest)
            demoted.append(weakest)
            labelled.insert(candidate)
            promoted.append(candidate)
        }
        return (demoted.sorted(), promoted.sorted())
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
