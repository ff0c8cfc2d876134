import Prometheus
import S2Model

/// The metrics of one `s2scope live` process, in a Prometheus registry.
///
/// Two threads touch it and share nothing but atomics: the capture thread increments counters and sets
/// gauges (through a `MetricsPublisher` it owns), the metrics server's event loop renders the registry
/// for each scrape. A scrape never waits for the capture, and the capture never waits for a scrape.
///
/// Every label has a bounded set of values by construction (`BoundedLabel`): rule IDs come from the
/// catalog, severities, outcomes and anomaly kinds are closed sets, interfaces are those given with `-i`.
/// A label fed from the wire (a server's domain, #18) gets a cap and an `other` value beyond it, so a
/// hostile peer cannot grow the registry.
public final class SensorMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()

    // Capture.
    let packets: Counter
    let bytes: Counter
    let kernelReceived: Counter
    let kernelDrops: Counter
    // Analysis.
    let flows: Gauge
    let connectionsClosed: Counter
    // TLS sessions waiting for their secrets (live --keylog).
    let tlsReleased: Counter
    let tlsDropped: Counter
    let tlsHeldBytes: Gauge
    let tlsDroppedBytes: Counter
    // Output.
    let outputUp: Gauge
    let outputLost: Counter
    // Process.
    let residentBytes: Gauge
    let startTime: Gauge
    // The metrics server itself.
    let serverConnections: Gauge
    let serverRefusedAtLimit: Counter
    let serverRefusedPerAddress: Counter
    let serverPaused: Counter
    let serverTimeouts: Counter
    let serverOversized: Counter

    static let violations = (name: "s2scope_violations_total",
                             help: "Violations, by server (the top N by traffic have their own label, the others count as other), rule ID (s2scope rules) and severity.")
    static let violationsBySeverity = (name: "s2scope_violations_by_severity_total",
                                       help: "Violations reported, by severity.")
    static let anomalies = (name: "s2scope_anomalies_total",
                            help: "Capture, transport and sensor anomalies, by kind (REPORT.md).")
    static let dialbacks = (name: "s2scope_dialbacks_total",
                            help: "Dialback exchanges that got their outcome, by outcome (pending: never answered before the connection closed).")
    static let interruptions = (name: "s2scope_capture_interruptions_total",
                                help: "Times capture on an interface stopped (went down, lost its carrier, disappeared, read error).")
    static let interfaceUp = (name: "s2scope_capture_up",
                              help: "1 while the interface is captured, 0 while it is down or being reopened.")
    static let tlsWaited = (name: "s2scope_tls_sessions_waited_total",
                            help: "TLS sessions that held their records until their secrets were in the key log, by result.")
    static let requests = (name: "s2scope_metrics_requests_total",
                           help: "HTTP requests answered by the metrics server, by status code.")

    /// The dialback outcomes (the closed set of `s2scope_dialbacks_total{outcome}`).
    public static let outcomes = ["valid", "invalid", "error", "pending"]

    /// - Parameters:
    ///   - interfaces: the capture interfaces, the values of the `interface` label.
    ///   - startTime: seconds since the epoch at which the process started.
    public init(interfaces: [String], startTime: Double) {
        let r = registry
        packets = r.makeCounter(descriptor: Self.descriptor("s2scope_packets_total", "Frames captured and analysed."))
        bytes = r.makeCounter(descriptor: Self.descriptor("s2scope_bytes_total", "Bytes of the frames captured (as captured, up to the snap length)."))
        kernelReceived = r.makeCounter(descriptor: Self.descriptor("s2scope_kernel_received_total", "Packets the kernel's capture filter passed (libpcap ps_recv, summed over the interfaces)."))
        kernelDrops = r.makeCounter(descriptor: Self.descriptor("s2scope_kernel_drops_total", "Packets dropped by the kernel or the interface before s2scope read them (verdicts after a drop may miss traffic)."))
        flows = r.makeGauge(descriptor: Self.descriptor("s2scope_flows", "TCP connections tracked now."))
        connectionsClosed = r.makeCounter(descriptor: Self.descriptor("s2scope_connections_closed_total", "TCP connections that ended (FIN, RST, idle timeout or eviction) and were reported."))
        tlsReleased = r.makeCounter(descriptor: Self.descriptor(Self.tlsWaited.name, Self.tlsWaited.help), labels: [("result", "released")])
        tlsDropped = r.makeCounter(descriptor: Self.descriptor(Self.tlsWaited.name, Self.tlsWaited.help), labels: [("result", "dropped")])
        tlsHeldBytes = r.makeGauge(descriptor: Self.descriptor("s2scope_tls_held_bytes", "Bytes of TLS records held for secrets not in the key log yet."))
        tlsDroppedBytes = r.makeCounter(descriptor: Self.descriptor("s2scope_tls_dropped_bytes_total", "Bytes of TLS records given up because their secrets did not arrive in time."))
        outputUp = r.makeGauge(descriptor: Self.descriptor("s2scope_output_up", "1 while events are written to the output, 0 after a write failed (until SIGHUP reopens it)."))
        outputLost = r.makeCounter(descriptor: Self.descriptor("s2scope_output_events_lost_total", "Events not written because the output had failed (disk full, closed pipe)."))
        residentBytes = r.makeGauge(descriptor: Self.descriptor("s2scope_resident_bytes", "Resident memory of the process (read at scrape time)."))
        self.startTime = r.makeGauge(descriptor: Self.descriptor("s2scope_start_time_seconds", "Start of the process, seconds since the epoch."))
        serverConnections = r.makeGauge(descriptor: Self.descriptor("s2scope_metrics_connections", "Connections open to the metrics server now."))
        let refused = Self.descriptor("s2scope_metrics_refused_total",
                                      "Metrics connections closed as soon as accepted, by reason (per-address: that client address holds its share; limit: accepted in the batch that took the last slot).")
        serverRefusedAtLimit = r.makeCounter(descriptor: refused, labels: [("reason", "limit")])
        serverRefusedPerAddress = r.makeCounter(descriptor: refused, labels: [("reason", "per-address")])
        serverPaused = r.makeCounter(descriptor: Self.descriptor("s2scope_metrics_paused_total", "Times every metrics connection slot was taken and accepting paused until one freed."))
        serverTimeouts = r.makeCounter(descriptor: Self.descriptor("s2scope_metrics_timeouts_total", "Metrics connections closed because they did not finish within the deadline (idle or slow clients)."))
        serverOversized = r.makeCounter(descriptor: Self.descriptor("s2scope_metrics_oversized_total", "Metrics connections closed because their request exceeded the size limit."))
        self.startTime.set(startTime)
        outputUp.set(to: 1)
        // Closed label sets start at zero, so that a dashboard sees 0 rather than no series.
        for s in Severity.allCases {
            _ = r.makeCounter(descriptor: Self.descriptor(Self.violationsBySeverity.name, Self.violationsBySeverity.help), labels: [("severity", s.name)])
        }
        for o in Self.outcomes {
            _ = r.makeCounter(descriptor: Self.descriptor(Self.dialbacks.name, Self.dialbacks.help), labels: [("outcome", o)])
        }
        for k in AnomalyKind.allCases {
            _ = r.makeCounter(descriptor: Self.descriptor(Self.anomalies.name, Self.anomalies.help), labels: [("kind", k.rawValue)])
        }
        for i in Set(interfaces) {
            _ = r.makeCounter(descriptor: Self.descriptor(Self.interruptions.name, Self.interruptions.help), labels: [("interface", i)])
            r.makeGauge(descriptor: Self.descriptor(Self.interfaceUp.name, Self.interfaceUp.help), labels: [("interface", i)]).set(to: 1)
        }
    }

    static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// The text exposition (format 0.0.4) of every metric.
    public func render() -> [UInt8] {
        residentBytes.set(Int64(ProcessMemory.residentBytes()))
        return registry.emitToBuffer()
    }

    func requestCounter(status: Int) -> Counter {
        // Status codes are those the server itself sends: a closed set.
        registry.makeCounter(descriptor: Self.descriptor(Self.requests.name, Self.requests.help), labels: [("code", String(status))])
    }
}

/// The values one label may take. Either a closed set (anything else is counted as `other`), or an
/// open set capped at `limit` distinct values (the first seen keep their own series, later ones share
/// `other`). Either way the number of series is bounded whatever the traffic says.
public struct BoundedLabel {
    public static let overflow = "other"
    private let allowed: Set<String>?
    private let limit: Int
    private var seen: Set<String> = []

    /// A closed set.
    public init(values: some Sequence<String>) {
        allowed = Set(values)
        limit = allowed!.count
    }

    /// An open set of at most `limit` values.
    public init(limit: Int) {
        allowed = nil
        self.limit = max(0, limit)
    }

    /// The label value to record `raw` under.
    public mutating func value(for raw: String) -> String {
        if let allowed { return allowed.contains(raw) ? raw : Self.overflow }
        if seen.contains(raw) { return raw }
        guard seen.count < limit else { return Self.overflow }
        seen.insert(raw)
        return raw
    }

    /// Distinct values recorded under their own name so far (open sets).
    public var distinctValues: Int { allowed?.count ?? seen.count }
}

/// What the capture loop knows at one moment: running totals, turned into counter increments by
/// `MetricsPublisher`.
public struct SensorTotals: Sendable {
    public var packets = 0
    public var bytes: Int64 = 0
    public var kernelReceived: UInt64 = 0
    public var kernelDropped: UInt64 = 0
    public var flows = 0
    public var connectionsClosed = 0
    public var outcomes: [String: Int] = [:]
    public var outputUp = true
    public var outputLost = 0
    /// Per interface: capturing now, and times its capture stopped.
    public var interfaces: [String: (up: Bool, interruptions: Int)] = [:]
    /// TLS sessions held for their secrets (live --keylog).
    public struct TLSHold: Sendable {
        public var sessionsReleased = 0, sessionsDropped = 0, bytesHeld = 0
        public var bytesDropped: UInt64 = 0
        public init(sessionsReleased: Int, sessionsDropped: Int, bytesHeld: Int, bytesDropped: UInt64) {
            self.sessionsReleased = sessionsReleased
            self.sessionsDropped = sessionsDropped
            self.bytesHeld = bytesHeld
            self.bytesDropped = bytesDropped
        }
    }
    public var tls: TLSHold?
    public init() {}
}

/// The capture thread's side of `SensorMetrics`: owned by that thread alone, it keeps what it last
/// published and turns running totals into counter increments (the counters are atomics; nothing here
/// takes a lock after the first event of a label value).
public struct MetricsPublisher {
    public let metrics: SensorMetrics
    private var last = SensorTotals()
    private var rules: BoundedLabel
    private var severities = BoundedLabel(values: Severity.allCases.map(\.name))
    private var kinds = BoundedLabel(values: AnomalyKind.allCases.map(\.rawValue))
    private var outcomes = BoundedLabel(values: SensorMetrics.outcomes)
    /// Per server label, its violation counters by rule and severity (dropped when it loses the label).
    private var violationCounters: [String: [String: Counter]] = [:]
    /// Which servers have a label of their own (top N by traffic).
    public let servers: ServerLabels
    /// Labels are reassigned at most this often (seconds).
    public var rankInterval: Double = 10
    private var lastRank: Double?
    private var severityCounters: [String: Counter] = [:]
    private var anomalyCounters: [String: Counter] = [:]
    private var outcomeCounters: [String: Counter] = [:]
    private var interfaceCounters: [String: (interruptions: Counter, up: Gauge)] = [:]

    /// - Parameters:
    ///   - rules: every rule ID that may fire (the catalog).
    ///   - maxServers: servers with a `server` label of their own (`ServerLabels`).
    public init(metrics: SensorMetrics, rules: some Sequence<String>, maxServers: Int = 50) {
        self.metrics = metrics
        self.rules = BoundedLabel(values: rules)
        servers = ServerLabels(maxServers: maxServers)
    }

    /// One violation of a server not known by name (counted as `other`).
    public mutating func violation(rule: String, severity: Severity) {
        violation(server: ServerLabels.other, rule: rule, severity: severity)
    }

    /// One violation by `server` (a domain or an address: see `ServerLabels`).
    public mutating func violation(server: String, rule: String, severity: Severity) {
        let who = server == ServerLabels.other ? server : servers.labelForFinding(Self.visible(server))
        let r = rules.value(for: rule), s = severities.value(for: severity.name)
        let key = r + "\u{0}" + s
        if let c = violationCounters[who]?[key] { c.increment() } else {
            let c = metrics.registry.makeCounter(descriptor: SensorMetrics.descriptor(SensorMetrics.violations.name, SensorMetrics.violations.help),
                                                 labels: [("server", who), ("rule", r), ("severity", s)])
            violationCounters[who, default: [:]][key] = c
            c.increment()
        }
        Self.counter(&severityCounters, metrics.registry, SensorMetrics.violationsBySeverity, "severity", s).increment()
    }

    /// `bytes` more traffic sent by `server` (what decides who has a label).
    public mutating func traffic(server: String, bytes: Int) {
        servers.addTraffic(Self.visible(server), bytes)
    }

    /// Reassigns the server labels (at most every `rankInterval` seconds of `now`): a server that
    /// loses its label loses its series (its later violations count under `other`); one that gets
    /// a label has its series from then on. Every series is a monotone counter while it exists.
    public mutating func rankServers(now: Double) {
        if let last = lastRank, now - last < rankInterval { return }
        lastRank = now
        for gone in servers.rerank(now: now).demoted {
            for c in (violationCounters.removeValue(forKey: gone) ?? [:]).values { metrics.registry.unregisterCounter(c) }
        }
    }

    /// A server name as a label value: control characters (never in a domain, possible in hostile
    /// bytes) shown as `\xNN`; the text format escapes backslash, quote and line feed itself.
    /// At most 253 characters (a domain's longest).
    public static func visible(_ name: String) -> String {
        var clean = name.utf8.count <= 253
        if clean { for b in name.utf8 where b < 0x20 || b == 0x7f { clean = false; break } }
        if clean { return name }
        var out = ""
        for u in name.unicodeScalars.prefix(253) {
            if u.value < 0x20 || u.value == 0x7f {
                let hex = String(u.value, radix: 16)
                out += "\\x" + (hex.count == 1 ? "0" : "") + hex
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    /// One anomaly, as it is reported.
    public mutating func anomaly(kind: AnomalyKind) {
        let k = kinds.value(for: kind.rawValue)
        Self.counter(&anomalyCounters, metrics.registry, SensorMetrics.anomalies, "kind", k).increment()
    }

    /// Publishes the running totals (increments by what changed since the last call).
    public mutating func publish(_ t: SensorTotals) {
        let m = metrics
        if t.packets > last.packets { m.packets.increment(by: Int64(t.packets - last.packets)) }
        if t.bytes > last.bytes { m.bytes.increment(by: t.bytes - last.bytes) }
        if t.kernelReceived > last.kernelReceived { m.kernelReceived.increment(by: Int64(t.kernelReceived - last.kernelReceived)) }
        if t.kernelDropped > last.kernelDropped { m.kernelDrops.increment(by: Int64(t.kernelDropped - last.kernelDropped)) }
        if t.connectionsClosed > last.connectionsClosed { m.connectionsClosed.increment(by: Int64(t.connectionsClosed - last.connectionsClosed)) }
        if t.outputLost > last.outputLost { m.outputLost.increment(by: Int64(t.outputLost - last.outputLost)) }
        if t.flows != last.flows { m.flows.set(Int64(t.flows)) }
        if let h = t.tls {
            let before = last.tls ?? SensorTotals.TLSHold(sessionsReleased: 0, sessionsDropped: 0, bytesHeld: 0, bytesDropped: 0)
            if h.sessionsReleased > before.sessionsReleased { m.tlsReleased.increment(by: Int64(h.sessionsReleased - before.sessionsReleased)) }
            if h.sessionsDropped > before.sessionsDropped { m.tlsDropped.increment(by: Int64(h.sessionsDropped - before.sessionsDropped)) }
            if h.bytesDropped > before.bytesDropped { m.tlsDroppedBytes.increment(by: Int64(h.bytesDropped - before.bytesDropped)) }
            if h.bytesHeld != before.bytesHeld { m.tlsHeldBytes.set(Int64(h.bytesHeld)) }
        }
        if t.outputUp != last.outputUp { m.outputUp.set(to: t.outputUp ? 1 : 0) }
        for (o, n) in t.outcomes where n > last.outcomes[o, default: 0] {
            let label = outcomes.value(for: o)
            Self.counter(&outcomeCounters, m.registry, SensorMetrics.dialbacks, "outcome", label)
                .increment(by: Int64(n - last.outcomes[o, default: 0]))
        }
        for (name, state) in t.interfaces {
            let c: (interruptions: Counter, up: Gauge)
            if let known = interfaceCounters[name] { c = known } else {
                c = (m.registry.makeCounter(descriptor: SensorMetrics.descriptor(SensorMetrics.interruptions.name, SensorMetrics.interruptions.help), labels: [("interface", name)]),
                     m.registry.makeGauge(descriptor: SensorMetrics.descriptor(SensorMetrics.interfaceUp.name, SensorMetrics.interfaceUp.help), labels: [("interface", name)]))
                interfaceCounters[name] = c
            }
            let before = last.interfaces[name]
            if state.interruptions > before?.interruptions ?? 0 { c.interruptions.increment(by: Int64(state.interruptions - (before?.interruptions ?? 0))) }
            if before?.up != state.up { c.up.set(to: state.up ? 1 : 0) }
        }
        last = t
    }

    private static func counter(_ cache: inout [String: Counter], _ registry: PrometheusCollectorRegistry,
                                _ family: (name: String, help: String), _ label: String, _ value: String) -> Counter {
        if let c = cache[value] { return c }
        let c = registry.makeCounter(descriptor: SensorMetrics.descriptor(family.name, family.help), labels: [(label, value)])
        cache[value] = c
        return c
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// The process's own memory, from /proc (Linux).
public enum ProcessMemory {
    /// Resident set size in bytes (0 where /proc is not readable).
    public static func residentBytes() -> Int {
        // /proc/self/statm: "size resident shared text lib data dt", in pages.
        let fd = open("/proc/self/statm", O_RDONLY)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 128)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return 0 }
        let fields = buf[0..<n].split(separator: UInt8(ascii: " "))
        guard fields.count >= 2, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
