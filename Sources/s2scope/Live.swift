import ArgumentParser
import S2Capture
import S2Dialback
import S2Engine
import S2Model
import S2Report
import S2Rules
import S2TLS

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Set by SIGINT/SIGTERM; the capture loop checks it between polls.
nonisolated(unsafe) var stopRequested: sig_atomic_t = 0

struct Live: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Monitor interfaces live and report violations as they happen.",
        discussion: """
            Findings stream out as they are judged (JSON Lines, flushed per event, or text). Reaction \
            timers run on capture time, so "missing reaction" rules fire once their timer expires even on \
            an idle link. Closed connections are reported and forgotten, so memory stays flat over days. \
            SIGINT or SIGTERM stops the capture, flushes every open exchange and prints the final summary; \
            the exit status follows --fail-on as for 'analyze'.

            Examples:
              s2scope live -i eth0
              s2scope live -i eth0 -i eth1 --format jsonl --output /var/log/s2scope.jsonl --stats-interval 60
              s2scope live -i any --metrics 127.0.0.1:9269 --user nobody
              s2scope live -i eth0 --keylog /var/lib/prosody/sslkeys.log

            With --keylog the file is followed as the servers append to it (it may be missing or \
            empty at start): a TLS session whose secrets are not in it yet holds its records, and the \
            frames after them wait too, for --keylog-wait seconds (at most 1 MiB per session, 32 MiB \
            in all); when the secrets arrive everything is decrypted and judged in capture order. The \
            file is opened before privileges are dropped when it exists at start; otherwise --user \
            must be able to read it.
            """)

    @Option(name: [.short, .customLong("interface")], help: ArgumentHelp("Interface to capture on; repeat for several.", valueName: "iface"))
    var interfaces: [String] = []

    @OptionGroup var analysis: AnalysisOptions

    @Option(name: .long, help: "Output format: jsonl (one event per line, flushed) or text.")
    var format: OutputFormat = .jsonl

    @Option(name: [.short, .long], help: ArgumentHelp("Append events to this file instead of standard output.", valueName: "file"))
    var output: String?

    @Option(name: .long, help: "Snap length in bytes.")
    var snaplen: Int32 = 262_144

    @Option(name: .long, help: "Kernel capture buffer size in bytes.")
    var bufferSize: Int32 = 16 << 20

    @Flag(inversion: .prefixedNo, help: "Put the interfaces in promiscuous mode.")
    var promiscuous = true

    @Flag(inversion: .prefixedNo, help: "Deliver each packet at once (libpcap immediate mode). Off by default: in immediate mode libpcap 1.10 cuts the kernel ring into snap-length slots, so a burst overflows it; without it packets arrive within 100 ms.")
    var immediate = false

    @Option(name: .long, help: "Seconds between 'stats' events (packets, bytes, kernel drops, flows, memory); 0 = none.")
    var statsInterval: Double = 0

    @Option(name: .long, help: "Stop after this many seconds.")
    var duration: Double?

    @Option(name: .long, help: "Stop after this many frames.")
    var count: Int?

    @Option(name: .long, help: "When started as root, switch to this user once the capture handles are open.")
    var user: String = "nobody"

    @Option(name: .long, help: ArgumentHelp("Serve Prometheus metrics at http://ADDR:PORT/metrics.", valueName: "addr:port"))
    var metrics: String?

    @Option(name: .long, help: ArgumentHelp("Servers with a label of their own in s2scope_violations_total{server,rule,severity}: the top N by traffic (bytes sent, decaying with a 5-minute half-life); all others count as server=\"other\". Bounds the metric's series to (N+1) × the rule/severity pairs seen.", valueName: "n"))
    var metricsServers: Int = 50

    func validate() throws {
        if interfaces.isEmpty { throw ValidationError("give at least one interface with -i (e.g. -i eth0, or -i any)") }
        if format == .json { throw ValidationError("live output is a stream: use --format jsonl or --format text") }
        if let m = metrics, MetricsServer.parse(m) == nil { throw ValidationError("--metrics expects ADDR:PORT, e.g. 127.0.0.1:9269") }
        if !(0...10_000).contains(metricsServers) { throw ValidationError("--metrics-servers takes 0 to 10000") }
    }

    func run() throws {
        var configuration = try analysis.makeConfiguration(loadKeyLogs: false)
        configuration.retainHistory = false
        let followers = analysis.keylog.map { KeyLogFollower(path: $0) }
        configuration.followsKeyLog = !followers.isEmpty
        var options = LiveOptions()
        options.snapLength = snaplen
        options.bufferSize = bufferSize
        options.promiscuous = promiscuous
        options.immediate = immediate
        options.filter = analysis.filter ?? LiveCapture.defaultFilter(ports: Array(configuration.ports))
        configuration.filter = nil  // applied in the kernel above
        let capture: LiveCapture
        do {
            capture = try LiveCapture(interfaces: interfaces, options: options)
        } catch let e as CaptureError {
            throw FatalError(message: e.message)
        }
        let server = try metrics.map { m -> MetricsServer in
            guard let s = MetricsServer(listen: m) else { throw FatalError(message: "--metrics \(m): cannot listen") }
            return s
        }
        // Key logs that exist now are opened while still root (they are 0600, the servers' own).
        var initialSecrets = KeyLog()
        for f in followers {
            let (secrets, notes) = f.poll()
            initialSecrets.merge(secrets)
            for n in notes { fputs("s2scope: \(n)\n", stderr) }
        }
        try dropPrivileges()

        var sink: UnsafeMutablePointer<FILE> = stdout
        if let output {
            guard let f = fopen(output, "a") else { throw FatalError(message: "\(output): cannot open for writing") }
            sink = f
        }
        let text = TextReport(color: false)
        let engine = Engine(configuration: configuration)
        engine.addSecrets(initialSecrets)
        func readKeyLogs() -> KeyLog {
            var secrets = KeyLog()
            for f in followers {
                let (more, notes) = f.poll()
                for n in notes { fputs("s2scope: \(n)\n", stderr) }
                secrets.merge(more)
            }
            return secrets
        }
        func followKeyLogs() {
            let secrets = readKeyLogs()
            if !secrets.isEmpty { engine.addSecrets(secrets) }
        }
        // A session that misses its secrets reads the key logs at once: they are usually there.
        if !followers.isEmpty { engine.tlsKeys?.refill = readKeyLogs }
        func emit(_ line: String) {
            fputs(line, sink)
            fflush(sink)
        }
        engine.onViolation = { v in
            emit(format == .jsonl ? JSONReport.line { JSONReport.violation(&$0, v, event: true) } : text.line(for: v))
        }
        engine.onDialback = { x in
            emit(format == .jsonl ? JSONReport.line { JSONReport.dialback(&$0, x, event: true) } : text.line(for: x))
        }
        engine.onAnomaly = { a in
            emit(format == .jsonl ? JSONReport.line { JSONReport.anomaly(&$0, a, event: true) } : text.line(for: a))
        }
        engine.onConnectionClosed = { c, tls in
            if format == .jsonl { emit(JSONReport.line { JSONReport.connection(&$0, c.summary, event: true, tls: tls) }) }
        }
        // Per-server counters only when they are served (it chains onConnectionClosed above).
        let perServer = server == nil ? nil : ServerMetricsCollector(engine: engine, maxServers: metricsServers)

        signal(SIGINT) { _ in stopRequested = 1 }
        signal(SIGTERM) { _ in stopRequested = 1 }
        signal(SIGPIPE, SIG_IGN)

        let start = wallClock()
        var lastStats = start
        var frames = 0
        var lastDrops: UInt64 = 0
        var lastPacketTime: Timestamp?
        var lastPacketWall = start
        func statsLine() -> String {
            let s = capture.statistics()
            var w = JSONWriter(pretty: false)
            w.beginObject()
            w.field("event", "stats")
            w.field("time", Timestamp(totalNanoseconds: Int64(wallClock() * 1e9)).rfc3339)
            w.field("packets", engine.report.statistics.packets)
            w.field("bytes", engine.report.statistics.bytes)
            w.field("kernel_received", s.received)
            w.field("kernel_dropped", s.dropped)
            w.field("interface_dropped", s.interfaceDropped)
            w.field("flows", engine.activeConnections)
            w.field("connections_closed", engine.connectionsClosed)
            w.field("dialbacks", engine.outcomes.values.reduce(0, +))
            w.field("violations", engine.violationsByRule.values.reduce(0, +))
            if let keys = engine.tlsKeys {
                let h = keys.statistics
                w.field("keylog_sessions", keys.keyLog.sessionCount)
                w.field("tls_sessions_waited", h.sessionsHeld)
                w.field("tls_sessions_released", h.sessionsReleased)
                w.field("tls_sessions_dropped", h.sessionsDropped)
                w.field("tls_bytes_held", h.bytesHeld)
                w.field("tls_bytes_dropped", h.bytesDropped)
                w.field("frames_waiting", engine.deferredFrameCount)
            }
            w.field("rss_bytes", residentBytes())
            w.endObject()
            return w.output + "\n"
        }
        while stopRequested == 0 {
            let n = capture.poll(timeoutMilliseconds: 200) { p in
                engine.process(p.bytes, linkType: p.linkType, frame: p.frame, wireLength: p.wireLength)
                lastPacketTime = p.frame.time
                frames += 1
            }
            // Secrets the servers wrote meanwhile; sessions that waited for them decrypt now.
            followKeyLogs()
            let now = wallClock()
            if n > 0 { lastPacketWall = now }
            // Idle link: move capture time on with the wall clock so flows and reaction timers expire.
            if n == 0, let t = lastPacketTime { engine.advanceIdle(to: t.adding(seconds: now - lastPacketWall)) }
            server?.serve { metricsText(engine: engine, capture: capture, perServer: perServer, now: now) }
            let s = capture.statistics()
            if s.dropped + s.interfaceDropped > lastDrops {
                let d = s.dropped + s.interfaceDropped - lastDrops
                lastDrops = s.dropped + s.interfaceDropped
                engine.anomaly(Anomaly(kind: .captureDrops, bytes: d, message: "the kernel or interface dropped \(d) packets: verdicts after this point may miss traffic"))
            }
            if statsInterval > 0 && now - lastStats >= statsInterval {
                lastStats = now
                if format == .jsonl { emit(statsLine()) } else { fputs("stats: \(statsLine())", stderr) }
            }
            if let duration, now - start >= duration { break }
            if let count, frames >= count { break }
        }
        followKeyLogs()
        let report = engine.finish()
        if format == .jsonl { emit(statsLine()) } else {
            let sev = Severity.allCases.reversed().map { "\(engine.violationsBySeverity[$0.name, default: 0]) \($0.name)" }
            emit("summary: \(frames) frames, \(engine.connectionsClosed) connections, \(engine.outcomes.values.reduce(0, +)) dialbacks (\(engine.outcomes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))), violations: \(sev.joined(separator: ", "))\n")
        }
        _ = report
        if let output, sink != stdout { fclose(sink); _ = output }
        let failing = Severity.allCases.filter { $0 >= analysis.failOn.severity }.reduce(0) { $0 + engine.violationsBySeverity[$1.name, default: 0] }
        if failing > 0 { throw ExitCode(1) }
    }

    /// Like tcpdump -Z: give up root once the capture handles are open.
    func dropPrivileges() throws {
        guard getuid() == 0 || geteuid() == 0 else { return }
        guard let pw = getpwnam(user) else { throw FatalError(message: "--user \(user): no such user") }
        let uid = pw.pointee.pw_uid, gid = pw.pointee.pw_gid
        guard setgroups(0, nil) == 0, setgid(gid) == 0, setuid(uid) == 0 else {
            throw FatalError(message: "cannot switch to user \(user): \(String(cString: strerror(errno)))")
        }
    }
}

func wallClock() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Resident set size from /proc/self/statm.
func residentBytes() -> Int {
    guard let f = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(f) }
    var size = 0, rss = 0
    _ = withUnsafeMutablePointer(to: &size) { s in withUnsafeMutablePointer(to: &rss) { r in vfscanf_wrapper(f, s, r) } }
    return rss * Int(sysconf(Int32(_SC_PAGESIZE)))
}

private func vfscanf_wrapper(_ f: UnsafeMutablePointer<FILE>, _ a: UnsafeMutablePointer<Int>, _ b: UnsafeMutablePointer<Int>) -> Int32 {
    var buf = [CChar](repeating: 0, count: 128)
    guard fgets(&buf, 128, f) != nil else { return 0 }
    let parts = buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }.split(separator: " ")
    if parts.count >= 2 { a.pointee = Int(parts[0]) ?? 0; b.pointee = Int(parts[1]) ?? 0 }
    return 2
}

/// Prometheus text exposition of the live counters.
func metricsText(engine: Engine, capture: LiveCapture, perServer: ServerMetricsCollector?, now: Double) -> String {
    let s = capture.statistics()
    var o = ""
    func metric(_ name: String, _ help: String, _ type: String, _ samples: [(String, Double)]) {
        o += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        for (labels, v) in samples { o += "\(name)\(labels) \(v == v.rounded() ? String(Int64(v)) : String(v))\n" }
    }
    // Label values escape backslash, double quote and newline (Prometheus text format).
    func esc(_ v: String) -> String {
        var out = ""
        for ch in v {
            switch ch {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(ch)
            }
        }
        return out
    }
    metric("s2scope_packets_total", "Frames captured.", "counter", [("", Double(engine.report.statistics.packets))])
    metric("s2scope_bytes_total", "Bytes captured.", "counter", [("", Double(engine.report.statistics.bytes))])
    metric("s2scope_kernel_drops_total", "Packets dropped by the kernel or interface.", "counter", [("", Double(s.dropped + s.interfaceDropped))])
    metric("s2scope_flows", "TCP connections tracked now.", "gauge", [("", Double(engine.activeConnections))])
    metric("s2scope_dialbacks_total", "Dialback exchanges by outcome.", "counter",
           ["valid", "invalid", "error"].map { ("{outcome=\"\($0)\"}", Double(engine.outcomes[$0, default: 0])) })
    // By server, rule and severity, with a bounded server label (ServerViolationCounters).
    if let perServer { o += perServer.exposition(now: now) }
    metric("s2scope_violations_by_severity_total", "Violations by severity.", "counter",
           Severity.allCases.map { ("{severity=\"\($0.name)\"}", Double(engine.violationsBySeverity[$0.name, default: 0])) })
    metric("s2scope_anomalies_total", "Anomalies by kind.", "counter",
           engine.report.statistics.anomaliesByKind.sorted { $0.key < $1.key }.map { ("{kind=\"\(esc($0.key))\"}", Double($0.value)) })
    if let keys = engine.tlsKeys {
        let h = keys.statistics
        metric("s2scope_tls_sessions_waited_total", "TLS sessions that held their records until their secrets were in the key log.", "counter",
               [("{result=\"released\"}", Double(h.sessionsReleased)), ("{result=\"dropped\"}", Double(h.sessionsDropped))])
        metric("s2scope_tls_held_bytes", "Bytes of TLS records held for secrets not in the key log yet.", "gauge", [("", Double(h.bytesHeld))])
        metric("s2scope_tls_dropped_bytes_total", "Bytes of TLS records given up because their secrets did not arrive in time.", "counter", [("", Double(h.bytesDropped))])
    }
    metric("s2scope_resident_bytes", "Resident memory.", "gauge", [("", Double(residentBytes()))])
    return o
}
