import S2TestSupport
import Foundation
import S2Capture
import S2Engine
import S2Metrics
import S2Model
import S2Report
import S2Rules
import S2Synth
import Testing

/// `live --metrics`: the per-server violation counter fed by a running engine (ServerAttribution
/// names the servers, MetricsPublisher counts them under bounded labels).
struct ServerAttributionTests {
    /// An engine as `live` runs it (closed connections forgotten), with attribution into a publisher.
    final class Sensor {
        let engine: Engine
        let attribution: ServerAttribution
        let metrics = SensorMetrics(interfaces: ["lo"], startTime: 0)
        var publisher: MetricsPublisher
        init(maxServers: Int) {
            var configuration = EngineConfiguration()
            configuration.retainHistory = false
            engine = Engine(configuration: configuration)
            attribution = ServerAttribution(engine: engine)
            publisher = MetricsPublisher(metrics: metrics, rules: RuleCatalog.all.map(\.id), maxServers: maxServers)
            attribution.onFinding = { [unowned self] server, rule, severity in publisher.violation(server: server, rule: rule, severity: severity) }
            attribution.onTraffic = { [unowned self] server, bytes in publisher.traffic(server: server, bytes: bytes) }
        }
        /// What a scrape shows after the traffic so far was ranked at `now`.
        func exposition(now: Double) -> String {
            attribution.flush()
            publisher.rankServers(now: now)
            return String(decoding: metrics.render(), as: UTF8.self)
        }
    }

    static func samples(_ text: String) -> [(server: String, rule: String, severity: String, value: Int)] {
        text.split(separator: "\n").filter { $0.hasPrefix("s2scope_violations_total{") }.map { line in
            let inner = String(line.split(separator: "{", maxSplits: 1)[1].split(separator: "}", maxSplits: 1)[0])
            var labels: [String: String] = [:]
            for pair in inner.components(separatedBy: "\",") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                labels[String(kv[0])] = String(kv[1]).replacingOccurrences(of: "\"", with: "")
            }
            return (labels["server"]!, labels["rule"]!, labels["severity"]!, Int(line.split(separator: " ").last!)!)
        }
    }

    /// The lab capture of six servers through an engine that forgets closed connections (as
    /// `live` does): each finding under the name of the server that broke the rule.
    @Test func labCaptureChargesTheRightServers() throws {
        let sensor = Sensor(maxServers: 10)
        let engine = sensor.engine
        var closed = 0
        let chained = engine.onConnectionClosed
        #expect(chained != nil)
        engine.onConnectionClosed = { c, t in closed += 1; chained?(c, t) }
        for r in try Engine.open(paths: [repoRoot.appendingPathComponent("fixtures/lab/multi-server.pcap").path], filter: nil) { engine.read(r) }
        _ = engine.finish()
        #expect(closed == 19)
        let text = sensor.exposition(now: 0)
        let s = Self.samples(text)
        func value(_ server: String, _ rule: String, _ severity: String) -> Int? {
            s.first { $0.server == server && $0.rule == rule && $0.severity == severity }?.value
        }
        #expect(value("evil.lab", "STANZA-ADDR-4", "critical") == 1, "\(text)")
        #expect(value("lazy.lab", "DB-CORR-9", "medium") == 1)
        #expect(value("a.lab", "STANZA-ADDR-5", "low") == 1)
        #expect(value("e.lab", "STREAM-FEAT-2", "low") == 3)
        #expect(s.allSatisfy { $0.server != "other" }, "six servers, ten labels: everyone has one")
        // Every finding counted once (the offline report of the same capture has 57).
        #expect(s.reduce(0) { $0 + $1.value } == 57)

        // With two labels: at most three server values, the same total.
        let two = Sensor(maxServers: 2)
        for r in try Engine.open(paths: [repoRoot.appendingPathComponent("fixtures/lab/multi-server.pcap").path], filter: nil) { two.engine.read(r) }
        _ = two.engine.finish()
        let s2 = Self.samples(two.exposition(now: 0))
        #expect(Set(s2.map(\.server)).count <= 3 && Set(s2.map(\.server)).contains("other"))
        #expect(s2.reduce(0) { $0 + $1.value } == 57)
    }

    /// 10,000 peer domains, each on its own connection from its own address, each breaking a rule
    /// (an initial header with id=''): the exposition keeps at most N+1 server label values and
    /// the collector's memory does not grow with the peers once their connections closed.
    @Test func tenThousandPeerDomainsThroughTheEngine() throws {
        var w = PcapWriter()
        var time = Timestamp(seconds: 1_700_000_000, nanoseconds: 0)
        let server = PacketBuilder.addressBytes("10.0.0.2")
        let header = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0'"
        for i in 0..<10_000 {
            let client = PacketBuilder.addressBytes("10.\(1 + i >> 16).\((i >> 8) & 0xff).\(i & 0xff)")
            let port = UInt16(20000 + i % 40000)
            // A few heavy peers: peer0…peer4 send a long header (more traffic).
            let padding = i < 5 ? String(repeating: " ", count: 50_000) : ""
            let text = Array("\(header) to='b.example' from='peer\(i).example' id=''\(padding)>".utf8)
            var seq: UInt32 = 1000
            func add(_ flags: UInt8, _ payload: ArraySlice<UInt8> = [], fromClient: Bool = true, ack: UInt32 = 1) {
                let f = fromClient
                    ? PacketBuilder.tcpFrame(src: client, dst: server, sport: port, dport: 5269, seq: seq, ack: ack, flags: flags, payload: payload)
                    : PacketBuilder.tcpFrame(src: server, dst: client, sport: 5269, dport: port, seq: 5000, ack: seq, flags: flags, payload: payload)
                w.add(f, time: time)
                time = time.adding(seconds: 0.0001)
            }
            add(0x02, ack: 0)
            seq += 1
            add(0x12, fromClient: false)
            var k = 0
            while k < text.count {
                let j = min(text.count, k + 1400)
                add(0x18, text[k..<j], ack: 5001)
                seq &+= UInt32(j - k)
                k = j
            }
            add(0x04, ack: 5001)  // reset: the connection ends and is forgotten
        }
        let pcap = temporaryFile(w.bytes)
        defer { try? FileManager.default.removeItem(atPath: pcap) }
        let n = 50
        let sensor = Sensor(maxServers: n)
        let engine = sensor.engine
        var exposed: [String] = []
        let reader = try Engine.open(path: pcap, inputIndex: 0, filter: nil)
        var frames = 0
        _ = reader.read { p in
            engine.process(p.bytes, linkType: p.linkType, frame: p.frame, wireLength: p.wireLength)
            frames += 1
            if frames % 10_000 == 0 { exposed.append(sensor.exposition(now: Double(frames) / 100)) }
            return true
        }
        _ = engine.finish()
        exposed.append(sensor.exposition(now: 1000))
        for text in exposed {
            let servers = Set(Self.samples(text).map(\.server))
            #expect(servers.count <= n + 1, "\(servers.count) server label values")
        }
        let last = Self.samples(exposed.last!)
        #expect(last.allSatisfy { $0.rule == "STREAM-HDR-8" && $0.severity == "info" }, "\(Set(last.map(\.rule)))")
        #expect(last.reduce(0) { $0 + $1.value } <= 10_000)
        let info = exposed.last!.split(separator: "\n").first { $0.hasPrefix("s2scope_violations_by_severity_total{severity=\"info\"}") }
        #expect(info.map { Int($0.split(separator: " ").last!) } == 10_000, "one finding per peer, each counted")
        #expect(sensor.publisher.servers.trackedServers <= sensor.publisher.servers.sketchCapacity)
        // The heavy peers have their own label.
        for i in 0..<5 { #expect(sensor.publisher.servers.labelled.contains("peer\(i).example"), "peer\(i)") }
        #expect(last.first { $0.server == "other" }!.value > 9_000)
    }
}
