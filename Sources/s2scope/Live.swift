import ArgumentParser
import S2Capture
import S2Dialback
import S2Engine
import S2Metrics
import S2Model
import S2Report
import S2Rules
import S2TLS

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Set by SIGINT/SIGTERM; the capture loop checks it between polls.
nonisolated(unsafe) var stopRequested: sig_atomic_t = 0
/// Set by SIGHUP: reopen the output (log rotation).
nonisolated(unsafe) var reopenRequested: sig_atomic_t = 0

struct Live: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Monitor interfaces live and report violations as they happen.",
        discussion: """
            Findings stream out as they are judged (JSON Lines written whole and unbuffered, one event per \
            line, or text). Reaction timers run on capture time, so "missing reaction" rules fire once their \
            timer expires even on an idle link. Closed connections are reported and forgotten. SIGINT or \
            SIGTERM stops the capture, flushes every open exchange and prints the final summary; the exit \
            status follows --fail-on as for 'analyze'.

            A sensor that keeps going:
              - An interface that goes down (or loses its carrier) and comes back is captured again; one \
            that disappears or is re-created is reopened by name (after 0.25 s, doubling up to 5 s). Each \
            blind period is a 'capture-interrupted' anomaly when it starts and when it ends. An interface \
            that is down at start is captured once it comes up.
              - If the output cannot be written (disk full, closed pipe), the partial line is cut off again \
            (what the file holds stays valid JSON Lines), one message goes to standard error, and the \
            analysis and the metrics go on.
              - SIGHUP reopens --output (log rotation: mv the file away, then kill -HUP): the following \
            events go to a new file, which after a write failure starts with an 'output-failed' anomaly \
            counting the events lost.
              - --metrics serves Prometheus metrics on a thread of its own; the capture only updates \
            counters. At most 64 metrics connections at once (more wait, unaccepted, until one ends) and 8 \
            per client address (more are closed at once), 5 seconds and 8 KiB of request each.
              - Started as root, s2scope switches to --user once the capture handles and the metrics port \
            are open; an interface that must be reopened then needs CAP_NET_RAW (see the systemd unit in \
            packaging/systemd, which keeps only CAP_NET_RAW and CAP_NET_ADMIN instead of switching).

            Examples:
              s2scope live -i eth0
              s2scope live -i eth0 -i eth1 --format jsonl --output /var/log/s2scope/events.jsonl --stats-interval 60
              s2scope live -i any --metrics 127.0.0.1:9269 --user nobody
              s2scope live -i eth0 --metrics :9269          # every IPv6 and IPv4 address
              s2scope live -i eth0 --metrics [::1]:9269 --metrics 127.0.0.1:9269
              mv events.jsonl events.jsonl.1 && kill -HUP $(pidof s2scope)   # rotate the output
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

    @Option(name: .long, help: "Output format: jsonl (one event per line, written whole) or text.")
    var format: OutputFormat = .jsonl

    @Option(name: [.short, .long], help: ArgumentHelp("Append events to this file instead of standard output; SIGHUP reopens it.", valueName: "file"))
    var output: String?

    @Option(name: .long, help: "Snap length in bytes.")
    var snaplen: Int32 = 262_144

    @Option(name: .long, help: "Kernel capture buffer size in bytes: what absorbs a burst while the analysis catches up (a 100 MB burst at 1 Gbit/s needs 128 MiB with --threads 2 on two cores; docs/BENCH.md). The ring's pages count in the process's RSS.")
    var bufferSize: Int32 = 16 << 20

    @Flag(name: .long, help: "Print the capture filter (BPF, as tcpdump reads it) this run would compile in the kernel, --filter or the default one for --port, and exit: `tcpdump -r FILE \"$(s2scope live --print-filter)\"` shows what a sensor would see of a capture.")
    var printFilter = false

    @Flag(inversion: .prefixedNo, help: "Put the interfaces in promiscuous mode.")
    var promiscuous = true

    @Flag(inversion: .prefixedNo, help: "Deliver each packet at once (libpcap immediate mode). Off by default: in immediate mode libpcap 1.10 cuts the kernel ring into snap-length slots, so a burst overflows it; without it packets arrive within 100 ms.")
    var immediate = false

    @Option(name: .long, help: ArgumentHelp("Threads to use, as in analyze: with 2 or more, XML parsing runs on N-1 worker threads beside the one that captures, reassembles and judges in capture order (the findings are the same as with 1); what was read is judged after each batch of packets. 0: one per CPU core.", valueName: "n"))
    var threads: Int = 1

    @Option(name: .long, help: "Seconds between 'stats' events (packets, bytes, kernel drops, flows, memory); 0 = none.")
    var statsInterval: Double = 0

    @Option(name: .long, help: "Stop after this many seconds.")
    var duration: Double?

    @Option(name: .long, help: "Stop after this many frames.")
    var count: Int?

    @Option(name: .long, help: "When started as root, switch to this user once the capture handles are open.")
    var user: String = "nobody"

    @Option(name: .long, help: ArgumentHelp("Serve Prometheus metrics at http://ADDR:PORT/metrics; repeatable. ADDR is an IPv4 address, a bracketed IPv6 address ([::1], [::] = IPv6 and IPv4), 'localhost', or empty (:9269 = every address of both families).", valueName: "addr:port"))
    var metrics: [String] = []

    @Option(name: .long, help: ArgumentHelp("Servers with a label of their own in s2scope_violations_total{server,rule,severity}: the top N by traffic (bytes sent, decaying with a 5-minute half-life); every other server counts as server=\"other\". Bounds that metric to (N+1) × the rule/severity pairs seen.", valueName: "n"))
    var metricsServers: Int = 50

    func validate() throws {
        if printFilter { return }
        if interfaces.isEmpty { throw ValidationError("give at least one interface with -i (e.g. -i eth0, or -i any)") }
        if format == .json { throw ValidationError("live output is a stream: use --format jsonl or --format text") }
        if threads < 0 || threads > 64 { throw ValidationError("--threads takes 0 (one per core) to 64") }
        // Parsing threads read the key store without a lock, which holds only while nothing adds
        // to it; a followed key log grows during the run.
        if !analysis.keylog.isEmpty && threads != 1 {
            throw ValidationError("--keylog is followed as the servers write it, which needs --threads 1 (with more threads, secrets are read only before the run: analyze --keylog)")
        }
        for m in metrics {
            if case .failure(let e) = ListenAddress.parse(m) { throw ValidationError("--metrics \(e)") }
        }
        if !(0...10_000).contains(metricsServers) { throw ValidationError("--metrics-servers takes 0 to 10000") }
    }

    func run() throws {
        // Before anything slow: SIGHUP's default action would end the process.
        signal(SIGINT) { _ in stopRequested = 1 }
        signal(SIGTERM) { _ in stopRequested = 1 }
        signal(SIGHUP) { _ in reopenRequested = 1 }
        signal(SIGPIPE, SIG_IGN)

        var configuration = try analysis.makeConfiguration(loadKeyLogs: false)
        if printFilter {
            print(analysis.filter ?? LiveCapture.defaultFilter(ports: Array(configuration.ports)))
            return
        }
        configuration.retainHistory = false
        configuration.threads = threads == 0 ? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) : threads
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
        let start = wallClock()
        var sensorMetrics: SensorMetrics?
        var server: MetricsServer?
        if !metrics.isEmpty {
            let m = SensorMetrics(interfaces: interfaces, startTime: start)
            let addresses = metrics.flatMap { (try? ListenAddress.parse($0).get()) ?? [] }
            do {
                let s = try MetricsServer(listen: addresses, metrics: m)
                for l in s.listening { fputs("s2scope: metrics at http://\(l)/metrics\n", stderr) }
                for k in s.skipped { fputs("s2scope: metrics not served on \(k)\n", stderr) }
                server = s
            } catch {
                throw FatalError(message: "--metrics: \(error)")
            }
            sensorMetrics = m
        }
        defer { server?.shutdown() }
        // Key logs that exist now are opened while still root (they are 0600, the servers' own).
        var initialSecrets = KeyLog()
        for f in followers {
            let (secrets, notes) = f.poll()
            initialSecrets.merge(secrets)
            for n in notes { fputs("s2scope: \(n)\n", stderr) }
        }
        try dropPrivileges()

        let log: EventLog
        do {
            log = try EventLog(path: output)
        } catch {
            throw FatalError(message: error.message)
        }
        var publisher = sensorMetrics.map { MetricsPublisher(metrics: $0, rules: RuleCatalog.all.map(\.id), maxServers: metricsServers) }
        let text = TextReport(color: false)
        let engine = Engine(configuration: configuration)
        if configuration.threads > 1 && engine.parsingThreads < configuration.threads - 1 {
            fputs("s2scope: could start only \(engine.parsingThreads) of \(configuration.threads - 1) parsing threads; going on with \(engine.parsingThreads + 1)\n", stderr)
        }
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
        func emit(_ line: String) { log.append(line) }
        func anomalyLine(_ a: Anomaly) -> String {
            format == .jsonl ? JSONReport.line { JSONReport.anomaly(&$0, a, event: true) } : text.line(for: a)
        }
        engine.onViolation = { v in
            emit(format == .jsonl ? JSONReport.line { JSONReport.violation(&$0, v, event: true) } : text.line(for: v))
        }
        engine.onDialback = { x in
            emit(format == .jsonl ? JSONReport.line { JSONReport.dialback(&$0, x, event: true) } : text.line(for: x))
        }
        engine.onAnomaly = { a in
            publisher?.anomaly(kind: a.kind)
            emit(anomalyLine(a))
        }
        engine.onConnectionClosed = { c, tls in
            if format == .jsonl { emit(JSONReport.line { JSONReport.connection(&$0, c.summary, event: true, tls: tls) }) }
        }
        // Every finding (also those past a rule's listing bound) under the name of the server that
        // broke the rule, and every server's traffic, which decides who has a label (issue #18).
        let attribution = publisher == nil ? nil : ServerAttribution(engine: engine)
        attribution?.onFinding = { server, rule, severity in publisher?.violation(server: server, rule: rule, severity: severity) }
        attribution?.onTraffic = { server, bytes in publisher?.traffic(server: server, bytes: bytes) }

        var lastStats = start
        var frames = 0
        var drops = CaptureDropLedger()
        var lastPacketTime: Timestamp?
        var lastPacketWall = start
        var outputFailureReported = false
        var lastPublish = start
        let outputName = output ?? "standard output"
        func now() -> Timestamp { Timestamp(totalNanoseconds: Int64(wallClock() * 1e9)) }
        func statsLine(final: Bool = false) -> String {
            let s = capture.statistics()
            var w = JSONWriter(pretty: false)
            w.beginObject()
            w.field("event", "stats")
            w.field("time", now().rfc3339)
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
            w.field("rss_bytes", ProcessMemory.residentBytes())
            w.field("capture_interruptions", capture.interfaces.reduce(0) { $0 + $1.interruptions })
            w.field("interfaces_capturing", capture.interfaces.filter(\.isCapturing).count)
            w.field("output_events_lost", log.linesLost)
            if final {
                // The last stats event says what the losses left unjudged (the same counts as the report's not_judged).
                w.field("final", true)
                w.beginObject("not_judged")
                for (k, v) in engine.report.statistics.notJudgedByReason.sorted(by: { $0.key < $1.key }) { w.field(k, v) }
                w.endObject()
            }
            w.endObject()
            return w.output + "\n"
        }
        func publish() {
            guard publisher != nil else { return }
            attribution?.flush()
            publisher?.rankServers(now: wallClock())
            let s = capture.statistics()
            var t = SensorTotals()
            t.packets = engine.report.statistics.packets
            t.bytes = engine.report.statistics.bytes
            t.kernelReceived = s.received
            t.kernelDropped = s.dropped + s.interfaceDropped
            t.flows = engine.activeConnections
            t.connectionsClosed = engine.connectionsClosed
            t.outcomes = engine.outcomes
            t.outputUp = log.failure == nil
            t.outputLost = log.linesLost
            for i in capture.interfaces { t.interfaces[i.name] = (i.isCapturing, i.interruptions) }
            if let h = engine.tlsKeys?.statistics {
                t.tls = SensorTotals.TLSHold(sessionsReleased: h.sessionsReleased, sessionsDropped: h.sessionsDropped,
                                             bytesHeld: h.bytesHeld, bytesDropped: h.bytesDropped)
            }
            publisher?.publish(t)
        }
        func reportCaptureEvents() {
            for e in capture.takeEvents() {
                let message: String
                switch e {
                case .interrupted(let name, let reason, let reopening):
                    message = "capture on \(name) stopped: \(reason)\(reopening ? "; reopening it" : ""); traffic on it is not seen until capture resumes"
                case .reopenFailed(let name, let reason):
                    message = "capture on \(name) cannot be reopened yet (\(reason)); retrying"
                case .resumed(let name, let seconds, let reopened):
                    message = "capture on \(name) resumed after \(String(format1: seconds)) s\(reopened ? " (reopened)" : ""); connections open across the gap may show gaps"
                }
                engine.anomaly(Anomaly(kind: .captureInterrupted, time: now(), message: message))
            }
        }
        func handleOutput() {
            if let failure = log.failure, !outputFailureReported {
                outputFailureReported = true
                // `s2scope live … | head`: nobody will read again, and no metrics are served.
                if output == nil && log.failureCode == EPIPE && server == nil {
                    fputs("s2scope: standard output was closed; stopping\n", stderr)
                    stopRequested = 1
                    return
                }
                fputs("s2scope: \(outputName): \(failure) after \(log.linesWritten) events; output stopped, the analysis and the metrics go on\(output != nil ? " (SIGHUP reopens it)" : "")\n", stderr)
                engine.anomaly(Anomaly(kind: .outputFailed, time: now(),
                                       message: "\(outputName): \(failure); events are not written until the output is reopened"))
            }
            guard reopenRequested != 0 else { return }
            reopenRequested = 0
            guard output != nil else {
                fputs("s2scope: SIGHUP: standard output is not reopened\n", stderr)
                return
            }
            do {
                let r = try log.reopen()
                if let failure = r.endedFailure {
                    outputFailureReported = false
                    let since = r.failedAt.map { Timestamp(totalNanoseconds: Int64($0 * 1e9)).rfc3339 } ?? "the failure"
                    emit(anomalyLine(Anomaly(kind: .outputFailed, time: now(),
                                             message: "\(r.linesLost) events were not written between \(since) and this reopening: \(failure)")))
                    fputs("s2scope: \(outputName) reopened; \(r.linesLost) events were lost while it had failed\n", stderr)
                }
            } catch {
                fputs("s2scope: SIGHUP: \(error.message); still writing to the file opened before\n", stderr)
            }
        }

        reportCaptureEvents()  // interfaces down at start
        while stopRequested == 0 {
            let n = capture.poll(timeoutMilliseconds: 200) { p in
                engine.process(p.bytes, linkType: p.linkType, frame: p.frame, wireLength: p.wireLength)
                lastPacketTime = p.frame.time
                frames += 1
            }
            // Secrets the servers wrote meanwhile; sessions that waited for them decrypt now.
            followKeyLogs()
            let wall = wallClock()
            if n > 0 {
                lastPacketWall = wall
                engine.flushParsing()
            }
            // Idle link: move capture time on with the wall clock so flows and reaction timers expire.
            if n == 0, let t = lastPacketTime { engine.advanceIdle(to: t.adding(seconds: wall - lastPacketWall)) }
            reportCaptureEvents()
            let s = capture.statistics()
            let droppedBefore = drops.dropped
            if let first = drops.observe(received: s.received, dropped: s.dropped + s.interfaceDropped, at: now()) {
                engine.anomaly(first)
                fputs("s2scope: warning: \(first.message)\n", stderr)
            }
            if drops.dropped > droppedBefore, let t = lastPacketTime { engine.noteCaptureLoss(at: t) }
            handleOutput()
            if statsInterval > 0 && wall - lastStats >= statsInterval {
                lastStats = wall
                if format == .jsonl { emit(statsLine()) } else { fputs("stats: \(statsLine())", stderr) }
            }
            if wall - lastPublish >= 0.1 {
                lastPublish = wall
                publish()
            }
            if let duration, wall - start >= duration { break }
            if let count, frames >= count { break }
        }
        followKeyLogs()
        let s = capture.statistics()
        if let first = drops.observe(received: s.received, dropped: s.dropped + s.interfaceDropped, at: now()) { engine.anomaly(first) }
        let finished = engine.finish()
        handleOutput()
        let dropSummary = drops.summary(notJudged: finished.statistics.notJudgedByReason)
        if let dropSummary { fputs("s2scope: \(dropSummary)\n", stderr) }
        if format == .jsonl { emit(statsLine(final: true)) } else {
            if let dropSummary { emit("\(dropSummary)\n") }
            let sev = Severity.allCases.reversed().map { "\(engine.violationsBySeverity[$0.name, default: 0]) \($0.name)" }
            emit("summary: \(frames) frames, \(engine.connectionsClosed) connections, \(engine.outcomes.values.reduce(0, +)) dialbacks (\(engine.outcomes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))), violations: \(sev.joined(separator: ", "))\n")
        }
        publish()
        log.close()
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

extension String {
    /// One decimal: 3.2.
    init(format1 value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(abs(tenths % 10))"
    }
}
