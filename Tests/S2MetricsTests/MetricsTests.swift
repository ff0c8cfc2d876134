import S2Metrics
import S2Model
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `--metrics` addresses: the forms the help promises, and clear refusals.
struct ListenAddressTests {
    private func parsed(_ s: String) -> [String]? {
        guard case .success(let a) = ListenAddress.parse(s) else { return nil }
        return a.map { "\($0)\($0.optional ? "?" : "")" }
    }

    @Test func forms() {
        #expect(parsed("127.0.0.1:9269") == ["127.0.0.1:9269"])
        #expect(parsed("0.0.0.0:9269") == ["0.0.0.0:9269"])
        #expect(parsed("[::1]:9269") == ["[::1]:9269"])
        #expect(parsed("[::]:9269") == ["[::]:9269"])
        #expect(parsed("[2001:db8::5]:80") == ["[2001:db8::5]:80"])
        #expect(parsed("[::ffff:10.0.0.1]:9269") == ["[::ffff:10.0.0.1]:9269"])
        #expect(parsed(":9269") == ["[::]:9269?", "0.0.0.0:9269?"], "both families, each optional")
        #expect(parsed("9269") == ["[::]:9269?", "0.0.0.0:9269?"])
        #expect(parsed("localhost:9269") == ["127.0.0.1:9269", "[::1]:9269?"])
        #expect(parsed("127.0.0.1:0") == ["127.0.0.1:0"], "port 0: the system chooses")
    }

    @Test func refusals() {
        for bad in ["::1:9269", "[::1]9269", "[::1:9269", "[nonsense]:1", "example.org:9269", "127.0.0.1:", "127.0.0.1:70000",
                    "1.2.3:9269", "256.1.1.1:9269", "[1:2:3:4:5:6:7:8:9]:1", "[:::]:1", "[1::2::3]:1", ""] {
            guard case .failure(let e) = ListenAddress.parse(bad) else {
                Issue.record("'\(bad)' was accepted")
                continue
            }
            #expect(!e.description.isEmpty)
        }
        guard case .failure(let e) = ListenAddress.parse("::1:9269") else { return }
        #expect(e.description.contains("[::1]:9269"), "the hint shows the bracketed form: \(e)")
    }
}

/// Label values cannot grow without bound, whatever the traffic says.
struct BoundedLabelTests {
    @Test func closedSetFoldsTheRestIntoOther() {
        var l = BoundedLabel(values: ["high", "low"])
        #expect(l.value(for: "high") == "high")
        #expect(l.value(for: "bogus\"}\n") == "other")
    }

    @Test func openSetKeepsTheFirstValuesAndFoldsTheRest() {
        var l = BoundedLabel(limit: 3)
        let values = (0..<1000).map { "server\($0).example" }
        let recorded = values.map { l.value(for: $0) }
        #expect(Set(recorded) == ["server0.example", "server1.example", "server2.example", "other"])
        #expect(l.value(for: "server1.example") == "server1.example", "a value seen before keeps its series")
        #expect(l.distinctValues == 3)
    }
}

/// The value of one series in a text exposition.
func value(_ text: String, _ series: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}

/// What a scrape shows after the capture thread published.
struct SensorMetricsTests {
    @Test func publishedTotalsBecomeCountersAndGauges() {
        let m = SensorMetrics(interfaces: ["eth0", "eth1"], startTime: 1_700_000_000)
        var p = MetricsPublisher(metrics: m, rules: ["STANZA-ADDR-4", "DB-CORR-6"])
        var t = SensorTotals()
        t.packets = 100
        t.bytes = 150_000
        t.kernelReceived = 120
        t.kernelDropped = 3
        t.flows = 7
        t.connectionsClosed = 2
        t.outcomes = ["valid": 2, "invalid": 1]
        t.interfaces = ["eth0": (true, 0), "eth1": (false, 1)]
        p.publish(t)
        t.packets = 250
        t.bytes = 400_000
        t.flows = 5
        t.outcomes["valid"] = 5
        t.interfaces["eth1"] = (true, 1)
        t.outputUp = false
        t.outputLost = 4
        t.tls = SensorTotals.TLSHold(sessionsReleased: 3, sessionsDropped: 1, bytesHeld: 2048, bytesDropped: 700)
        p.publish(t)
        p.violation(rule: "STANZA-ADDR-4", severity: .high)
        p.violation(rule: "STANZA-ADDR-4", severity: .high)
        p.violation(rule: "NOT-A-RULE-1", severity: .low)
        p.anomaly(kind: .gap)
        p.anomaly(kind: .captureInterrupted)
        let text = String(decoding: m.render(), as: UTF8.self)
        #expect(value(text, "s2scope_packets_total") == 250)
        #expect(value(text, "s2scope_bytes_total") == 400_000)
        #expect(value(text, "s2scope_kernel_received_total") == 120)
        #expect(value(text, "s2scope_kernel_drops_total") == 3)
        #expect(value(text, "s2scope_flows") == 5)
        #expect(value(text, "s2scope_connections_closed_total") == 2)
        #expect(value(text, "s2scope_dialbacks_total{outcome=\"valid\"}") == 5)
        #expect(value(text, "s2scope_dialbacks_total{outcome=\"invalid\"}") == 1)
        #expect(value(text, "s2scope_dialbacks_total{outcome=\"pending\"}") == 0, "closed label sets start at zero")
        // Violations of no known server count as server="other" (see ServerLabelsTests for servers).
        #expect(value(text, "s2scope_violations_total{server=\"other\",rule=\"STANZA-ADDR-4\",severity=\"high\"}") == 2)
        #expect(value(text, "s2scope_violations_total{server=\"other\",rule=\"other\",severity=\"low\"}") == 1, "an ID outside the catalog does not make a series")
        #expect(value(text, "s2scope_violations_by_severity_total{severity=\"high\"}") == 2)
        #expect(value(text, "s2scope_violations_by_severity_total{severity=\"critical\"}") == 0)
        #expect(value(text, "s2scope_anomalies_total{kind=\"gap\"}") == 1)
        #expect(value(text, "s2scope_anomalies_total{kind=\"capture-interrupted\"}") == 1)
        #expect(value(text, "s2scope_anomalies_total{kind=\"xml-desync\"}") == 0)
        #expect(value(text, "s2scope_capture_up{interface=\"eth1\"}") == 1)
        #expect(value(text, "s2scope_capture_interruptions_total{interface=\"eth1\"}") == 1)
        #expect(value(text, "s2scope_capture_interruptions_total{interface=\"eth0\"}") == 0)
        #expect(value(text, "s2scope_output_up") == 0)
        #expect(value(text, "s2scope_output_events_lost_total") == 4)
        #expect(value(text, "s2scope_start_time_seconds") == 1_700_000_000)
        #expect(value(text, "s2scope_tls_sessions_waited_total{result=\"released\"}") == 3)
        #expect(value(text, "s2scope_tls_sessions_waited_total{result=\"dropped\"}") == 1)
        #expect(value(text, "s2scope_tls_held_bytes") == 2048)
        #expect(value(text, "s2scope_tls_dropped_bytes_total") == 700)
        #expect((value(text, "s2scope_resident_bytes") ?? 0) > 1_000_000, "read from /proc at scrape time")
        #expect(text.contains("# HELP s2scope_kernel_drops_total "))
        #expect(text.contains("# TYPE s2scope_violations_total counter"))
    }
}

/// The metrics server, spoken to over real sockets.
@Suite(.serialized)
struct MetricsServerTests {
    private func server(_ limits: MetricsServerLimits = .init(), _ spec: String = "127.0.0.1:0") throws -> (MetricsServer, SensorMetrics, Int) {
        let m = SensorMetrics(interfaces: ["eth0"], startTime: 0)
        let s = try MetricsServer(listen: try ListenAddress.parse(spec).get(), metrics: m, limits: limits)
        let port = Int(s.listening[0].split(separator: ":").last!)!
        return (s, m, port)
    }

    @Test func answersMetricsAndOnlyMetrics() throws {
        let (s, _, port) = try server()
        defer { s.shutdown() }
        let ok = try Client.request(port: port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(ok.hasPrefix("HTTP/1.1 200 OK"))
        #expect(ok.contains("Content-Type: text/plain; version=0.0.4"))
        #expect(ok.contains("Connection: close"))
        #expect(ok.contains("\ns2scope_packets_total 0\n"))
        #expect(value(ok, "s2scope_metrics_connections") == 1, "the scrape itself is open")
        let withQuery = try Client.request(port: port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n")
        #expect(withQuery.hasPrefix("HTTP/1.0 200 OK"))
        let head = try Client.request(port: port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(head.hasPrefix("HTTP/1.1 200 OK") && !head.contains("s2scope_packets_total"))
        #expect(try Client.request(port: port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").hasPrefix("HTTP/1.1 404"))
        let post = try Client.request(port: port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        #expect(post.hasPrefix("HTTP/1.1 405") && post.contains("Allow: GET, HEAD"))
        #expect(try Client.request(port: port, "garbage\r\n\r\n").hasPrefix("HTTP/1.1 400"))
        let after = try Client.request(port: port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(after.contains("s2scope_metrics_requests_total{code=\"404\"} 1"))
        #expect(after.contains("s2scope_metrics_requests_total{code=\"405\"} 1"))
    }

    @Test func silentAndSlowClientsAreClosedAtTheDeadline() throws {
        var limits = MetricsServerLimits()
        limits.deadline = 0.3
        let (s, m, port) = try server(limits)
        defer { s.shutdown() }
        let silent = try Client(port: port)
        let slow = try Client(port: port)
        try slow.send("GET /met")
        let t0 = Client.now()
        #expect(silent.readToEnd(timeout: 5) == "", "closed without an answer")
        #expect(slow.readToEnd(timeout: 5) == "")
        #expect(Client.now() - t0 < 2.5, "closed at the 0.3 s deadline, not at the client's pace")
        Client.settle()
        let text = String(decoding: m.render(), as: UTF8.self)
        #expect(value(text, "s2scope_metrics_timeouts_total") == 2)
        #expect(value(text, "s2scope_metrics_connections") == 0)
    }

    @Test func oversizedRequestsAreClosed() throws {
        var limits = MetricsServerLimits()
        limits.maxRequestBytes = 1024
        let (s, m, port) = try server(limits)
        defer { s.shutdown() }
        let c = try Client(port: port)
        try c.send("GET /metrics HTTP/1.1\r\nX-Padding: " + String(repeating: "a", count: 4000) + "\r\n\r\n")
        #expect(!c.readToEnd(timeout: 5).contains("200 OK"))
        #expect(String(decoding: m.render(), as: UTF8.self).contains("s2scope_metrics_oversized_total 1"))
    }

    @Test func connectionLimitsHoldInTotalAndPerClient() throws {
        var limits = MetricsServerLimits()
        limits.maxConnections = 4
        limits.maxConnectionsPerAddress = 2
        limits.deadline = 30
        let (s, m, port) = try server(limits, "0.0.0.0:0")
        defer { s.shutdown() }
        // Two idle connections from 127.0.0.1 take that address's share ...
        let held = try (0..<2).map { _ in try Client(port: port) }
        Client.settle()
        let third = try Client(port: port)
        #expect(third.readToEnd(timeout: 5) == "", "a third one from the same address is closed at once")
        // ... while another client address still gets its answer.
        let other = try Client.request(port: port, "GET /metrics HTTP/1.0\r\n\r\n", from: "127.0.0.2")
        #expect(other.hasPrefix("HTTP/1.0 200 OK"))
        #expect(other.contains("s2scope_metrics_refused_total{reason=\"per-address\"} 1"))
        // Fill the total with two more from other addresses: the server stops accepting, and a fifth
        // client waits in the kernel's backlog ...
        let more = try ["127.0.0.3", "127.0.0.4"].map { try Client(port: port, from: $0) }
        Client.settle()
        let fifth = try Client(port: port, from: "127.0.0.5")
        try fifth.send("GET /metrics HTTP/1.0\r\n\r\n")
        #expect(fifth.readToEnd(timeout: 0.5) == "", "not served while every slot is taken")
        // ... until a slot frees: then it is accepted and answered.
        held[0].close()
        let answer = fifth.readToEnd(timeout: 5)
        #expect(answer.hasPrefix("HTTP/1.0 200 OK"), "\(answer)")
        #expect(value(answer, "s2scope_metrics_paused_total") == 2, "paused when the fourth came, and again when the fifth took the freed slot")
        for c in held + more { c.close() }
        Client.settle()
        #expect(try Client.request(port: port, "GET /metrics HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.0 200 OK"))
    }

    @Test func listensOnIPv6AndBothFamilies() throws {
        guard Client.ipv6Available() else { return }  // IPv6 turned off on this host: nothing to test
        let (s, _, port) = try server(.init(), "[::1]:0")
        defer { s.shutdown() }
        #expect(try Client.request(port: port, "GET /metrics HTTP/1.0\r\n\r\n", host: "::1").hasPrefix("HTTP/1.0 200 OK"))
        // [::] alone takes IPv4 too (IPv4-mapped addresses).
        let (dual, _, p2) = try server(.init(), "[::]:0")
        defer { dual.shutdown() }
        #expect(try Client.request(port: p2, "GET /metrics HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.0 200 OK"))
        #expect(try Client.request(port: p2, "GET /metrics HTTP/1.0\r\n\r\n", host: "::1").hasPrefix("HTTP/1.0 200 OK"))
    }

    @Test func bothWildcardsOnOnePortBindSideBySide() throws {
        guard Client.ipv6Available() else { return }
        let port = Client.freePort()
        let m = SensorMetrics(interfaces: [], startTime: 0)
        let s = try MetricsServer(listen: try ListenAddress.parse(":\(port)").get(), metrics: m)
        defer { s.shutdown() }
        #expect(s.listening == ["[::]:\(port)", "0.0.0.0:\(port)"], "IPv6-only beside IPv4: \(s.listening) \(s.skipped)")
        #expect(try Client.request(port: port, "GET /metrics HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.0 200 OK"))
        #expect(try Client.request(port: port, "GET /metrics HTTP/1.0\r\n\r\n", host: "::1").hasPrefix("HTTP/1.0 200 OK"))
    }

    @Test func aTakenPortIsAClearError() throws {
        let (s, _, port) = try server()
        defer { s.shutdown() }
        let m = SensorMetrics(interfaces: [], startTime: 0)
        #expect {
            _ = try MetricsServer(listen: try ListenAddress.parse("127.0.0.1:\(port)").get(), metrics: m)
        } throws: { e in
            "\(e)".contains("127.0.0.1:\(port)") && "\(e)".contains("Address already in use")
        }
    }
}

/// A blocking test client with timeouts, so that no test can hang.
final class Client {
    let fd: Int32

    init(port: Int, host: String = "127.0.0.1", from source: String? = nil) throws {
        let v6 = host.contains(":")
        fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError.socket }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        if let source {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            inet_pton(AF_INET, source, &a.sin_addr)
            let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard rc == 0 else { Glibc.close(fd); throw ClientError.bind }
        }
        let rc: Int32
        if v6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = UInt16(port).bigEndian
            inet_pton(AF_INET6, host, &a.sin6_addr)
            rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = UInt16(port).bigEndian
            inet_pton(AF_INET, host, &a.sin_addr)
            rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard rc == 0 else { Glibc.close(fd); throw ClientError.connect }
    }

    deinit { close() }

    private var closed = false
    func close() {
        if !closed { Glibc.close(fd) }
        closed = true
    }

    func send(_ s: String) throws {
        let bytes = Array(s.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ClientError.send }
            off += n
        }
    }

    /// Everything until the server closes ("" when it closed without a word), or what came within
    /// `timeout` seconds.
    func readToEnd(timeout: Double) -> String {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65_536)
        let end = Self.now() + timeout
        while Self.now() < end {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(max(1, (end - Self.now()) * 1000))) > 0 else { break }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { out += buf[0..<n] } else if n == 0 || (errno != EINTR && errno != EAGAIN) { break }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func request(port: Int, _ text: String, host: String = "127.0.0.1", from: String? = nil) throws -> String {
        let c = try Client(port: port, host: host, from: from)
        try c.send(text)
        return c.readToEnd(timeout: 5)
    }

    /// Lets the server's event loop take the connections just made.
    static func settle() { usleep(200_000) }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func ipv6Available() -> Bool {
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        var a = sockaddr_in6()
        a.sin6_family = sa_family_t(AF_INET6)
        a.sin6_addr = in6addr_loopback
        return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } } == 0
    }

    /// A port free on both families right now.
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: a.sin_port))
    }
}

enum ClientError: Error { case socket, bind, connect, send }
