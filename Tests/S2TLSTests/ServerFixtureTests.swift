import Foundation
import Testing
import S2Capture
import S2Engine
import S2Model
import S2Report
import S2TLS

/// Captures of real Prosody 0.12 and ejabberd 23.01 federating with STARTTLS required, both
/// under the key-log shim (scripts/lab/tls-servers.sh): dialback inside TLS (self-signed
/// certificates) and SASL EXTERNAL (lab CA), TLS 1.3 and TLS 1.2. The truth files come from
/// tshark's decryption and the servers' logs.
struct ServerFixtureTests {
    static let cases = ["servers-dialback-tls13", "servers-dialback-tls12", "servers-sasl-tls13", "servers-sasl-tls12"]

    struct Truth {
        let raw: [String: Any]
        init(_ name: String) throws {
            raw = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture("\(name).truth.json")))) as! [String: Any]
        }
        var capture: String { fixture(raw["capture"] as! String) }
        var dsbCapture: String { fixture(raw["dsb_capture"] as! String) }
        var keylogs: [String] { (raw["keylogs"] as! [String]).map(fixture) }
        var tlsVersion: String { raw["tls_version"] as! String }
        var connections: Int { raw["expect_tls_connections"] as! Int }
        var dialbacks: [String] {
            (raw["dialbacks"] as! [[String: Any]]).map { "\($0["originating"]!)>\($0["receiving"]!):\($0["outcome"]!)" }.sorted()
        }
        /// "client:port>server:port" → [initiator's, acceptor's] bytes as tshark decrypts them.
        var decryptedBytes: [String: [Int]] { raw["decrypted_bytes"] as! [String: [Int]] }
    }

    /// Analyses a capture the way `s2scope analyze` does (key log files, then the capture's own
    /// decryption secrets blocks).
    static func run(_ capture: String, keylogs: [String]) throws -> (AnalysisReport, [Decrypted]) {
        var c = EngineConfiguration()
        for k in keylogs { #expect(c.loadKeyLog(path: k) == nil) }
        _ = c.loadEmbeddedSecrets(paths: [capture])
        let readers = try Engine.open(paths: [capture], filter: nil)
        let e = Engine(configuration: c)
        var plain: [Decrypted] = []
        e.onDecrypted = { id, d, bytes, f in plain.append(Decrypted(connection: id, direction: d, bytes: Array(bytes), frame: f.number)) }
        for r in readers { e.read(r) }
        return (e.finish(), plain)
    }

    static func dialbacks(_ r: AnalysisReport) -> [String] {
        r.exchanges.map { "\($0.originating)>\($0.receiving):\($0.outcomeName)" }.sorted()
    }

    /// Every s2s byte is decrypted with either server's key log, as many bytes per connection
    /// and direction as tshark decrypts, and the report holds the dialbacks of the truth and
    /// nothing at or above medium.
    @Test(arguments: cases)
    func everyByteIsDecryptedWithEachServersKeyLog(_ name: String) throws {
        let truth = try Truth(name)
        for keylog in truth.keylogs {
            let (r, plain) = try Self.run(truth.capture, keylogs: [keylog])
            #expect(r.connections.count == truth.connections)
            #expect(r.statistics.encryptedBytes == 0, "\(name) with \(keylog)")
            #expect(!r.anomalies.contains { $0.kind == .encrypted }, "\(r.anomalies.map(\.message))")
            for c in r.connections {
                #expect(c.tls)
                let t = try #require(r.tlsInfo[c.id])
                #expect(t.version == truth.tlsVersion && t.decryption == "decrypted" && t.undecryptedBytes == 0)
                let want = try #require(truth.decryptedBytes["\(c.client)>\(c.server)"], "\(c.client)>\(c.server)")
                let got = Direction.allCases.map { d in plain.filter { $0.connection == c.id && $0.direction == d }.reduce(0) { $0 + $1.bytes.count } }
                #expect(got == want, "\(name) \(c.id): s2scope \(got) vs tshark \(want)")
                #expect(t.decryptedBytes == UInt64(want.reduce(0, +)))
            }
            #expect(Self.dialbacks(r) == truth.dialbacks)
            #expect(r.violations.allSatisfy { $0.severity < .medium }, "\(r.violations.map { "\($0.rule) \($0.message)" })")
        }
    }

    /// The SASL EXTERNAL negotiations inside TLS are in the model as the servers ran them: both
    /// ways with success, a restart with a new stream id and the stream's domain authenticated;
    /// with self-signed certificates Prosody's attempt fails and both servers use dialback.
    @Test(arguments: cases)
    func saslNegotiationsInsideTLSAreReported(_ name: String) throws {
        let truth = try Truth(name)
        let (r, _) = try Self.run(truth.capture, keylogs: [truth.keylogs[1]])
        let got = r.connections.flatMap(\.sasl).map { "\($0.initiating ?? "?")>\($0.receiving ?? "?"):\($0.mechanism):\($0.outcome.rawValue):\($0.condition ?? "-"):\($0.authzid ?? "-")" }.sorted()
        let want = (truth.raw["sasl"] as! [[String: Any]]).map {
            "\($0["initiating"]!)>\($0["receiving"]!):\($0["mechanism"]!):\($0["outcome"]!):\(($0["condition"] as? String) ?? "-"):\(($0["authzid"] as? String) ?? "-")"
        }.sorted()
        #expect(got == want)
        for n in r.connections.flatMap(\.sasl) {
            #expect(n.overTLS && n.offered.contains("EXTERNAL"))
            if n.outcome == .success {
                #expect(n.domain == n.initiating)
                #expect(n.streamIDAfter != nil && n.streamIDAfter != n.streamIDBefore)
            }
        }
        #expect(!r.violations.contains { $0.rule.hasPrefix("SASL-") }, "\(r.violations.filter { $0.rule.hasPrefix("SASL-") }.map(\.message))")
    }

    /// The pcapng made with `editcap --inject-secrets` decrypts without --keylog and gives the
    /// same report as the pcap with the key log.
    @Test(arguments: cases)
    func decryptionSecretsBlockGivesTheSameReportWithoutKeyLog(_ name: String) throws {
        let truth = try Truth(name)
        var c = EngineConfiguration()
        let notes = c.loadEmbeddedSecrets(paths: [truth.dsbCapture])
        #expect(notes.count == 1 && notes[0].contains("read from 1 decryption secrets block"), "\(notes)")
        #expect(c.keyLog?.sessionCount == truth.raw["tls_sessions"] as? Int)
        let (dsb, _) = try Self.run(truth.dsbCapture, keylogs: [])
        let (pcap, _) = try Self.run(truth.capture, keylogs: [truth.keylogs[0]])
        #expect(dsb.statistics.encryptedBytes == 0)
        #expect(Self.dialbacks(dsb) == Self.dialbacks(pcap))
        #expect(violationKeys(dsb) == violationKeys(pcap))
        #expect(dsb.connections.map(\.streams.count) == pcap.connections.map(\.streams.count))
        #expect(dsb.tlsInfo.mapValues(\.decryptedBytes) == pcap.tlsInfo.mapValues(\.decryptedBytes))
        // And the secrets block merges with a key log given as well (here: the same secrets).
        let (both, _) = try Self.run(truth.dsbCapture, keylogs: [truth.keylogs[1]])
        #expect(violationKeys(both) == violationKeys(pcap) && both.statistics.encryptedBytes == 0)
        // Without the block (the plain pcap, no key log) nothing inside TLS is seen.
        let (none, _) = try Self.run(truth.capture, keylogs: [])
        #expect(none.exchanges.isEmpty && none.statistics.encryptedBytes > 0)
    }

    /// A live sensor whose key log grows during the run: the first session misses its secrets and
    /// holds its records, every later frame waits behind it, and all is analysed in capture order
    /// when the key log gains the lines (here only after the whole capture, so connections that
    /// ended meanwhile close then). The report is the one of the offline run with the key log.
    @Test(arguments: cases)
    func sessionsHoldTheirRecordsUntilTheKeyLogHasTheirSecrets(_ name: String) throws {
        let truth = try Truth(name)
        let keyLog = try KeyLog(path: truth.keylogs[0])
        var c = EngineConfiguration()
        c.followsKeyLog = true
        c.tlsHold.seconds = 3600
        let e = Engine(configuration: c)
        for r in try Engine.open(paths: [truth.capture], filter: nil) { e.read(r) }
        let keys = try #require(e.tlsKeys)
        #expect(keys.waitingSessions == 1 && keys.statistics.bytesHeld > 0)
        #expect(e.deferredFrameCount > 0 && e.connectionsClosed == 0, "frames after the wait wait too")
        e.addSecrets(keyLog)
        #expect(keys.waitingSessions == 0 && keys.statistics.bytesHeld == 0 && e.deferredFrameCount == 0)
        #expect(keys.statistics.sessionsHeld == 1 && keys.statistics.sessionsReleased == 1 && keys.statistics.sessionsDropped == 0)
        let held = e.finish()
        let (offline, _) = try Self.run(truth.capture, keylogs: [truth.keylogs[0]])
        Self.expectSameReport(held, offline)
    }

    /// The late key log of the lab, played back offline and deterministically: each session's
    /// secrets arrive 1.5 s (capture time) after it started to wait. Every session waits, nothing
    /// is given up, and the verdicts are those of the offline run — a db:verify held behind
    /// another session is still judged after the db:result it answers.
    @Test(arguments: cases)
    func aKeyLogThatLagsGivesTheOfflineReport(_ name: String) throws {
        let truth = try Truth(name)
        let lines = try String(contentsOfFile: truth.keylogs[0], encoding: .utf8).split(separator: "\n")
        var c = EngineConfiguration()
        c.followsKeyLog = true
        let e = Engine(configuration: c)
        let keys = try #require(e.tlsKeys)
        func due(_ now: Timestamp) {
            for w in keys.waits where now.secondsSince(w.since) >= 1.5 {
                let hex = w.clientRandom.map { String(format: "%02x", $0) }.joined()
                e.addSecrets(KeyLog(text: lines.filter { $0.contains(hex) }.joined(separator: "\n")))
            }
        }
        for r in try Engine.open(paths: [truth.capture], filter: nil) {
            _ = r.read { p in
                e.process(p.bytes, linkType: p.linkType, frame: p.frame, wireLength: p.wireLength)
                due(p.frame.time)
                return true
            }
        }
        // The capture ends while the last waits run: time goes on as on an idle link.
        var t = keys.waits.map(\.since).max() ?? .zero
        while keys.hasWaitingSessions {
            t = t.adding(seconds: 0.25)
            e.advanceIdle(to: t)
            due(t)
        }
        #expect(keys.statistics.sessionsHeld == truth.raw["tls_sessions"] as? Int)
        #expect(keys.statistics.sessionsReleased == keys.statistics.sessionsHeld && keys.statistics.sessionsDropped == 0)
        let held = e.finish()
        let (offline, _) = try Self.run(truth.capture, keylogs: [truth.keylogs[0]])
        Self.expectSameReport(held, offline)
    }

    static func expectSameReport(_ a: AnalysisReport, _ b: AnalysisReport) {
        #expect(a.statistics.encryptedBytes == 0)
        #expect(dialbacks(a) == dialbacks(b))
        #expect(a.exchanges.map { $0.verifyConnection?.description ?? "-" } == b.exchanges.map { $0.verifyConnection?.description ?? "-" })
        #expect(violationKeys(a) == violationKeys(b))
        #expect(a.tlsInfo.mapValues(\.decryptedBytes) == b.tlsInfo.mapValues(\.decryptedBytes))
        #expect(a.tlsInfo.values.allSatisfy { $0.decryption == "decrypted" })
        #expect(a.connections.flatMap(\.sasl) == b.connections.flatMap(\.sasl))
        #expect(a.statistics.packets == b.statistics.packets)
    }

    /// Secrets that never come: after the wait (capture time) the held records count as not
    /// decrypted, one anomaly per session says why, and nothing inside TLS is judged.
    @Test func secretsThatNeverComeAreGivenUpAfterTheWait() throws {
        let truth = try Truth("servers-sasl-tls13")
        var c = EngineConfiguration()
        c.followsKeyLog = true
        c.tlsHold.seconds = 0.5
        let e = Engine(configuration: c)
        for r in try Engine.open(paths: [truth.capture], filter: nil) { e.read(r) }
        let r = e.finish()
        let stats = try #require(e.tlsKeys).statistics
        #expect(stats.sessionsHeld == 2 && stats.sessionsDropped == 2 && stats.sessionsReleased == 0)
        #expect(stats.bytesDropped > 0 && stats.bytesHeld == 0)
        let gaveUp = r.anomalies.filter { $0.kind == .encrypted && $0.message.contains("within 0.5 s") }
        #expect(gaveUp.count == 2, "\(r.anomalies.map(\.message))")
        #expect(r.tlsInfo.values.allSatisfy { $0.decryption == "no-secrets" && $0.decryptedBytes == 0 && $0.undecryptedBytes > 0 })
        #expect(r.statistics.encryptedBytes > 0)
        #expect(r.violations.allSatisfy { $0.severity < .medium })
    }

    /// The byte bounds: a session that would hold more than its share gives up at once (the
    /// record that did not fit and everything after it count as not decrypted).
    @Test func heldBytesAreBounded() throws {
        let truth = try Truth("servers-dialback-tls13")
        var c = EngineConfiguration()
        c.followsKeyLog = true
        c.tlsHold.seconds = 3600
        c.tlsHold.bytesPerSession = 600
        let e = Engine(configuration: c)
        for r in try Engine.open(paths: [truth.capture], filter: nil) { e.read(r) }
        e.addSecrets(try KeyLog(path: truth.keylogs[0]))
        let r = e.finish()
        let stats = try #require(e.tlsKeys).statistics
        #expect(stats.sessionsDropped == 3 && stats.sessionsReleased == 0)
        #expect(r.anomalies.filter { $0.message.contains("limit of bytes held") }.count == 3)
        #expect(r.exchanges.isEmpty)
    }

    /// With a key log reader (live: the followed files), a session that misses its secrets
    /// reads them at once and never waits.
    @Test func refillReadsTheKeyLogBeforeWaiting() throws {
        let truth = try Truth("servers-dialback-tls12")
        let keyLog = try KeyLog(path: truth.keylogs[1])
        var c = EngineConfiguration()
        c.followsKeyLog = true
        let e = Engine(configuration: c)
        var reads = 0
        e.tlsKeys?.refill = {
            reads += 1
            return reads == 1 ? keyLog : KeyLog()
        }
        for r in try Engine.open(paths: [truth.capture], filter: nil) { e.read(r) }
        let r = e.finish()
        #expect(reads == 1)
        #expect(e.tlsKeys?.statistics.sessionsHeld == 0)
        #expect(r.statistics.encryptedBytes == 0 && Self.dialbacks(r) == truth.dialbacks)
    }
}
