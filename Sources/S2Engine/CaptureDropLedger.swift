import S2Model

/// Packets the kernel or the interface dropped before the sensor read them (libpcap's `ps_drop` and
/// `ps_ifdrop`, cumulative). A drop is not evidence against any server: it tears holes into streams,
/// and the rules whose evidence may lie in a hole stay silent for that stream (`not_judged`). Users
/// need to know that once and prominently — not as one line per poll while a flood lasts, which buries
/// the findings it explains — and again in the run's summary with what it cost.
public struct CaptureDropLedger: Sendable {
    public private(set) var received: UInt64 = 0
    public private(set) var dropped: UInt64 = 0
    /// When the first drop was noticed; nil while nothing was lost.
    public private(set) var firstDropAt: Timestamp?

    public init() {}

    /// Takes the capture's cumulative counters. Returns the one anomaly to report: at the first drop
    /// only (counters that go backwards, as after an interface is reopened, are taken as new baselines
    /// added to what was already counted).
    public mutating func observe(received r: UInt64, dropped d: UInt64, at time: Timestamp) -> Anomaly? {
        defer { lastReceived = r; lastDropped = d }
        received += r >= lastReceived ? r - lastReceived : r
        let new = d >= lastDropped ? d - lastDropped : d
        guard new > 0 else { return nil }
        dropped += new
        guard firstDropAt == nil else { return nil }
        firstDropAt = time
        return Anomaly(kind: .captureDrops, bytes: new, time: time,
                       message: "the kernel or the interface dropped \(new) packets before s2scope read them: streams with holes are not judged "
                              + "where the evidence may lie in the hole (counted under not_judged); further drops are counted in the stats events and the summary, "
                              + "not reported one by one (a larger --buffer-size or a narrower --filter may help)")
    }

    private var lastReceived: UInt64 = 0
    private var lastDropped: UInt64 = 0

    /// The summary line's account of the losses: nil when nothing was dropped.
    public func summary(notJudged: [String: Int]) -> String? {
        guard dropped > 0 else { return nil }
        let total = received + dropped
        let share = total > 0 ? Double(dropped) * 100 / Double(total) : 0
        let tenths = Int((share * 10).rounded())
        let judged = notJudged.isEmpty ? "nothing was left unjudged"
            : "not judged: " + notJudged.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        return "capture drops: \(dropped) of \(total) packets (\(tenths / 10).\(tenths % 10) %) never reached s2scope; \(judged)"
    }
}
