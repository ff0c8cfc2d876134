import Foundation
import Testing
import S2Engine
import S2Model
import S2Report
import S2TLS

/// The repository root (tests read fixtures from it).
let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func fixture(_ name: String) -> String { repoRoot.appendingPathComponent("fixtures/tls/\(name)").path }

struct Decrypted {
    var connection: ConnectionID
    var direction: Direction
    var bytes: [UInt8]
    var frame: Int
}

func analyze(_ pcap: String, keyLog: KeyLog?, secrets: [String: String] = [:]) throws -> (AnalysisReport, [Decrypted]) {
    var c = EngineConfiguration()
    c.keyLog = keyLog
    c.rules.secrets = secrets
    let readers = try Engine.open(paths: [pcap], filter: nil)
    let e = Engine(configuration: c)
    var plain: [Decrypted] = []
    e.onDecrypted = { id, d, bytes, f in plain.append(Decrypted(connection: id, direction: d, bytes: Array(bytes), frame: f.number)) }
    for r in readers { e.read(r) }
    return (e.finish(), plain)
}

/// The key log with one hex digit of every secret changed (client randoms intact).
func corrupted(_ path: String, labels: Set<String>? = nil) throws -> KeyLog {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    var out: [String] = []
    for line in text.split(separator: "\n") {
        let f = line.split(separator: " ")
        guard f.count == 3, labels == nil || labels!.contains(String(f[0])) else { out.append(String(line)); continue }
        let secret = String(f[2])
        let flipped = String(secret.dropLast()) + (secret.last == "0" ? "1" : "0")
        out.append("\(f[0]) \(f[1]) \(flipped)")
    }
    return KeyLog(text: out.joined(separator: "\n"))
}

func violationKeys(_ r: AnalysisReport) -> [String] {
    r.violations.map { "\($0.rule)@\($0.connection)#\($0.frame.number)" }.sorted()
}

struct FixtureTests {
    static let variants = ["prosody-tls13", "prosody-tls12"]

    /// Decrypted, the real capture shows the dialback exchanges of its truth file with their outcomes.
    @Test(arguments: variants)
    func decryptedCaptureMatchesTruth(_ name: String) throws {
        let truthData = try Data(contentsOf: URL(fileURLWithPath: fixture("\(name).truth.json")))
        let truth = try JSONSerialization.jsonObject(with: truthData) as! [String: Any]
        let keyLog = try KeyLog(path: fixture(truth["keylog"] as! String))
        let (r, plain) = try analyze(fixture(truth["capture"] as! String), keyLog: keyLog)
        let expected = (truth["dialbacks"] as! [[String: Any]]).map {
            "\($0["originating"]!)>\($0["receiving"]!):\($0["outcome"]!):verify=\(($0["verify_seen"] as? Bool) == true ? 1 : 0)"
        }.sorted()
        let got = r.exchanges.map { "\($0.originating)>\($0.receiving):\($0.outcomeName):verify=\($0.verifyConnection != nil ? 1 : 0)" }.sorted()
        #expect(got == expected)
        // The keys are bound to the post-TLS stream ids, which only decryption reveals.
        for x in r.exchanges {
            let c = r.connections.first { $0.id == x.resultConnection }!
            #expect(c.streams.count == 4, "pre-TLS and post-TLS headers both ways")
            #expect(x.streamID == c.streams.last { $0.direction == .serverToClient }?.id)
        }
        #expect(r.connections.count == truth["expect_tls_connections"] as! Int)
        #expect(r.connections.allSatisfy { $0.tls })
        #expect(!r.anomalies.contains { $0.kind == .encrypted }, "\(r.anomalies)")
        #expect(r.statistics.encryptedBytes == 0)
        #expect(r.violations.allSatisfy { $0.severity < .medium }, "\(r.violations.map(\.rule))")
        for c in r.connections {
            let t = try #require(r.tlsInfo[c.id])
            #expect(t.version == truth["tls_version"] as? String)
            #expect(t.decryption == "decrypted" && t.undecryptedBytes == 0 && t.decryptedBytes > 0)
            #expect(t.serverCertificates == 1)
            #expect(plain.filter { $0.connection == c.id }.reduce(0) { $0 + $1.bytes.count } == Int(t.decryptedBytes))
        }
        // Frames point at the packets that carried the records.
        let d1 = try #require(r.exchanges.first { $0.originating == "evil.lab" })
        #expect(plain.contains { $0.frame == d1.resultFrame.number && String(decoding: $0.bytes, as: UTF8.self).contains("<db:result") })
        // The JSON report carries tls_info per connection.
        let json = JSONReport.document(r)
        #expect(json.contains("\"tls_info\"") && json.contains("\"decryption\": \"decrypted\""))
    }

    @Test func tls12CaptureCoversThreeAEADSuites() throws {
        let (r, _) = try analyze(fixture("prosody-tls12.pcap"), keyLog: try KeyLog(path: fixture("prosody-tls12.keylog")))
        let suites = Set(r.tlsInfo.values.compactMap(\.cipherSuite))
        #expect(suites == ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
                           "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"])
    }

    /// Rules work inside TLS: the XEP-0185 key check (DB-AUTH-3) passes with the lab's secrets
    /// and fires with a wrong one.
    @Test func dialbackKeysAreCheckedInsideTLS() throws {
        let log = try KeyLog(path: fixture("prosody-tls13.keylog"))
        let (good, _) = try analyze(fixture("prosody-tls13.pcap"), keyLog: log,
                                    secrets: ["evil.lab": "evil-lab-dialback-secret", "a.lab": "a-lab-dialback-secret"])
        #expect(!good.violations.contains { $0.rule == "DB-AUTH-3" })
        let (bad, _) = try analyze(fixture("prosody-tls13.pcap"), keyLog: log, secrets: ["evil.lab": "wrong"])
        #expect(bad.violations.contains { $0.rule == "DB-AUTH-3" && $0.frame.number == 70 })
    }

    /// Without the key log: no dialback, an `encrypted` anomaly per connection that names --keylog,
    /// and the TLS parameters from the clear handshake.
    @Test(arguments: variants)
    func withoutKeyLogNothingInsideTLSIsSeen(_ name: String) throws {
        let (r, plain) = try analyze(fixture("\(name).pcap"), keyLog: nil)
        #expect(r.exchanges.isEmpty)
        #expect(plain.isEmpty)
        let enc = r.anomalies.filter { $0.kind == .encrypted }
        #expect(enc.count == 3)
        #expect(enc.allSatisfy { $0.message.contains("--keylog") })
        #expect(r.statistics.encryptedBytes > 0)
        for t in r.tlsInfo.values {
            #expect(t.decryption == "no-keylog" && t.decryptedBytes == 0)
            #expect(t.version != nil && t.cipherSuite != nil)
        }
        #expect(r.tlsInfo.values.filter { $0.sni == "a.lab" }.count == 2)
    }

    /// Wrong secrets: a decrypt-failed anomaly per direction, no dialback and no finding from
    /// inside TLS (the violations are exactly those of the run without keys).
    @Test(arguments: variants)
    func corruptedKeyLogGivesDecryptFailedAndNoXMLFindings(_ name: String) throws {
        let (plainRun, _) = try analyze(fixture("\(name).pcap"), keyLog: nil)
        let (r, plain) = try analyze(fixture("\(name).pcap"), keyLog: try corrupted(fixture("\(name).keylog")))
        #expect(r.exchanges.isEmpty)
        #expect(plain.isEmpty)
        let failed = r.anomalies.filter { $0.kind == .encrypted && $0.message.hasPrefix("TLS decryption failed") }
        #expect(failed.count == 6, "\(r.anomalies.map(\.message))")
        #expect(failed.allSatisfy { $0.message.contains("failed authentication with the key log's secrets") })
        #expect(Set(failed.compactMap(\.direction)).count == 2)
        #expect(!r.anomalies.contains { $0.kind == .xmlDesync })
        #expect(violationKeys(r) == violationKeys(plainRun))
        #expect(r.tlsInfo.values.allSatisfy { $0.decryption == "failed" && $0.decryptedBytes == 0 })
    }

    /// Right handshake secrets but wrong application secrets (TLS 1.3): the handshake decrypts
    /// (server certificates counted), application data fails, nothing is fed to XML.
    @Test func wrongApplicationSecretsStopBeforeAnyXML() throws {
        let bad = try corrupted(fixture("prosody-tls13.keylog"), labels: ["CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"])
        let (r, plain) = try analyze(fixture("prosody-tls13.pcap"), keyLog: bad)
        #expect(plain.isEmpty && r.exchanges.isEmpty)
        #expect(r.anomalies.filter { $0.message.hasPrefix("TLS decryption failed") }.count == 6)
        #expect(r.tlsInfo.values.allSatisfy { $0.serverCertificates == 1 && $0.decryption == "failed" })
    }

    /// A key log of other sessions: "no secrets for this session", nothing decrypted.
    @Test func keyLogOfOtherSessionsSaysSo() throws {
        let (r, plain) = try analyze(fixture("prosody-tls13.pcap"), keyLog: try KeyLog(path: fixture("prosody-tls12.keylog")))
        #expect(plain.isEmpty && r.exchanges.isEmpty)
        let enc = r.anomalies.filter { $0.kind == .encrypted }
        #expect(enc.count == 3 && enc.allSatisfy { $0.message.contains("no secrets for client random") })
        #expect(r.tlsInfo.values.allSatisfy { $0.decryption == "no-secrets" })
    }

    /// Cross-check with Wireshark: the application data s2scope decrypts equals tshark's
    /// decrypted TLS stream (`-z follow,tls,raw`) for every connection, both directions.
    @Test(arguments: variants)
    func plaintextEqualsTsharkDecryption(_ name: String) throws {
        let tshark = "/usr/bin/tshark"
        guard FileManager.default.isExecutableFile(atPath: tshark) else {
            print("tshark not installed: cross-check skipped")
            return
        }
        let (r, plain) = try analyze(fixture("\(name).pcap"), keyLog: try KeyLog(path: fixture("\(name).keylog")))
        #expect(r.connections.count == 3)
        for (n, c) in r.connections.enumerated() {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: tshark)
            p.arguments = ["-r", fixture("\(name).pcap"), "-o", "tls.keylog_file:\(fixture("\(name).keylog"))",
                           "-q", "-z", "follow,tls,raw,\(n)"]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            // Data lines: hex; those of the second node are indented with a tab.
            var sides: [[UInt8]] = [[], []]
            var inData = false
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("Node 1:") { inData = true; continue }
                if line.hasPrefix("====") { inData = false; continue }
                guard inData, !line.isEmpty else { continue }
                let indented = line.hasPrefix("\t")
                let hex = line.trimmingCharacters(in: .whitespaces)
                var bytes: [UInt8] = []
                var i = hex.startIndex
                while let j = hex.index(i, offsetBy: 2, limitedBy: hex.endIndex), i < hex.endIndex {
                    bytes.append(UInt8(hex[i..<j], radix: 16)!)
                    i = j
                }
                sides[indented ? 1 : 0] += bytes
            }
            let ours = Direction.allCases.map { d in plain.filter { $0.connection == c.id && $0.direction == d }.flatMap(\.bytes) }
            #expect(!sides[0].isEmpty && !sides[1].isEmpty, "tshark decrypted nothing for stream \(n)")
            #expect(Set(ours) == Set(sides), "\(name) C\(n + 1): s2scope \(ours.map(\.count)) bytes vs tshark \(sides.map(\.count))")
        }
    }
}
