import Crypto
import Testing
import S2Model
@testable import S2TLS

/// A TLS 1.3 session built here (records sealed with swift-crypto directly, nonces and AAD
/// written out independently of S2TLS) and fed to `TLSSession` one byte per "frame".
struct RecordLayerTests {
    struct Built {
        var client: [UInt8] = []
        var server: [UInt8] = []
        var keyLog = ""
        var clientPlain: [UInt8] = []
        var serverPlain: [UInt8] = []
    }

    static func handshake(_ type: UInt8, _ body: [UInt8]) -> [UInt8] {
        [type, 0, UInt8(body.count >> 8), UInt8(body.count & 0xff)] + body
    }

    static func record(_ type: UInt8, _ fragment: [UInt8]) -> [UInt8] {
        [type, 3, 3, UInt8(fragment.count >> 8), UInt8(fragment.count & 0xff)] + fragment
    }

    /// Seals one TLSInnerPlaintext as RFC 8446 §5.2 says.
    static func seal(_ suite: UInt16, secret: [UInt8], seq: UInt64, type: UInt8, content: [UInt8]) -> [UInt8] {
        let s = CipherSuite.lookup(suite)
        let key = s.hash.expandLabel(secret: secret, label: "key", length: s.aead!.keyLength)
        var nonce = s.hash.expandLabel(secret: secret, label: "iv", length: 12)
        for i in 0..<8 { nonce[11 - i] ^= UInt8(truncatingIfNeeded: seq >> (8 * UInt64(i))) }
        let inner = content + [type] + [0, 0, 0]   // with padding
        let len = inner.count + 16
        let aad: [UInt8] = [23, 3, 3, UInt8(len >> 8), UInt8(len & 0xff)]
        let sealed: [UInt8]
        if suite == 0x1303 {
            let box = try! ChaChaPoly.seal(inner, using: SymmetricKey(data: key), nonce: ChaChaPoly.Nonce(data: nonce), authenticating: aad)
            sealed = Array(box.ciphertext) + Array(box.tag)
        } else {
            let box = try! AES.GCM.seal(inner, using: SymmetricKey(data: key), nonce: AES.GCM.Nonce(data: nonce), authenticating: aad)
            sealed = Array(box.ciphertext) + Array(box.tag)
        }
        return record(23, sealed)
    }

    static func build(suite: UInt16) -> Built {
        var b = Built()
        let hash = CipherSuite.lookup(suite).hash
        let cr = [UInt8](repeating: 0xC1, count: 32), sr = [UInt8](repeating: 0x5E, count: 32)
        func secret(_ x: UInt8) -> [UInt8] { [UInt8](repeating: x, count: hash.length) }
        let cHS = secret(1), sHS = secret(2), cAP = secret(3), sAP = secret(4)
        let hex = { (x: [UInt8]) in hexString(x) }
        b.keyLog = """
            CLIENT_HANDSHAKE_TRAFFIC_SECRET \(hex(cr)) \(hex(cHS))
            SERVER_HANDSHAKE_TRAFFIC_SECRET \(hex(cr)) \(hex(sHS))
            CLIENT_TRAFFIC_SECRET_0 \(hex(cr)) \(hex(cAP))
            SERVER_TRAFFIC_SECRET_0 \(hex(cr)) \(hex(sAP))
            """
        let sni: [UInt8] = Array("b.example".utf8)
        let sniExt: [UInt8] = [0, 0, 0, UInt8(sni.count + 5), 0, UInt8(sni.count + 3), 0, 0, UInt8(sni.count)] + sni
        let alpn: [UInt8] = Array("xmpp-server".utf8)
        let alpnExt: [UInt8] = [0, 16, 0, UInt8(alpn.count + 3), 0, UInt8(alpn.count + 1), UInt8(alpn.count)] + alpn
        let versions: [UInt8] = [0, 43, 0, 5, 4, 0x0a, 0x0a, 3, 4]   // GREASE + TLS 1.3
        let chExts = sniExt + alpnExt + versions
        let ch = [3, 3] + cr + [0, 0, 2, UInt8(suite >> 8), UInt8(suite & 0xff), 1, 0]
            + [UInt8(chExts.count >> 8), UInt8(chExts.count & 0xff)] + chExts
        b.client += record(22, handshake(1, ch))
        let shExts: [UInt8] = [0, 43, 0, 2, 3, 4]
        let sh = [3, 3] + sr + [0, UInt8(suite >> 8), UInt8(suite & 0xff), 0, 0, UInt8(shExts.count)] + shExts
        b.server += record(22, handshake(2, sh))
        b.server += record(20, [1])
        // Server flight: EncryptedExtensions (ALPN) + Finished under the handshake secret.
        let eeExt: [UInt8] = [0, 16, 0, UInt8(alpn.count + 3), 0, UInt8(alpn.count + 1), UInt8(alpn.count)] + alpn
        let ee = handshake(8, [0, UInt8(eeExt.count)] + eeExt)
        b.server += seal(suite, secret: sHS, seq: 0, type: 22, content: ee + handshake(20, secret(9)))
        // Application data, a KeyUpdate, more application data under the next secret.
        let s1 = Array("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' id='x' from='b.example' version='1.0'>".utf8)
        let s2 = Array("<db:result xmlns:db='jabber:server:dialback' from='b.example' to='a.example' type='valid'/>".utf8)
        b.server += seal(suite, secret: sAP, seq: 0, type: 23, content: s1)
        b.server += seal(suite, secret: sAP, seq: 1, type: 22, content: handshake(24, [0]))
        let next = hash.expandLabel(secret: sAP, label: "traffic upd", length: hash.length)
        b.server += seal(suite, secret: next, seq: 0, type: 23, content: s2)
        b.server += seal(suite, secret: next, seq: 1, type: 21, content: [1, 0])   // close_notify
        b.serverPlain = s1 + s2
        // Client: change_cipher_spec, Finished, application data.
        let c1 = Array("<?xml version='1.0'?><stream:stream xmlns='jabber:server' to='b.example' version='1.0'>".utf8)
        b.client += record(20, [1])
        b.client += seal(suite, secret: cHS, seq: 0, type: 22, content: handshake(20, secret(8)))
        b.client += seal(suite, secret: cAP, seq: 0, type: 23, content: c1)
        b.clientPlain = c1
        return b
    }

    static func run(_ b: Built, keyLog: KeyLog?, chunk: Int) -> (TLSSession, [UInt8], [UInt8], [Int], [Anomaly]) {
        let s = TLSSession(connection: ConnectionID(1), keyLog: keyLog)
        var plain: [[UInt8]] = [[], []]
        var frames: [Int] = []
        var anomalies: [Anomaly] = []
        s.onPlaintext = { d, bytes, f in plain[d.rawValue] += bytes; frames.append(f.number) }
        s.onAnomaly = { anomalies.append($0) }
        var frame = 0
        func feed(_ d: Direction, _ data: [UInt8]) {
            var i = 0
            while i < data.count {
                let n = min(chunk, data.count - i)
                frame += 1
                Array(data[i..<(i + n)]).withUnsafeBytes {
                    s.tlsBytes(d, $0, at: UInt64(i), frame: FrameRef(input: 0, number: frame, time: .zero))
                }
                i += n
            }
        }
        // Order on the wire: ClientHello, server flight, client flight.
        let chLen = 5 + Int(b.client[3]) << 8 + Int(b.client[4])
        feed(.clientToServer, Array(b.client[..<chLen]))
        feed(.serverToClient, b.server)
        feed(.clientToServer, Array(b.client[chLen...]))
        s.tlsFinish()
        return (s, plain[0], plain[1], frames, anomalies)
    }

    @Test(arguments: [UInt16(0x1301), 0x1302, 0x1303])
    func decryptsTLS13WithKeyUpdateAcrossSplitRecords(suite: UInt16) {
        let b = Self.build(suite: suite)
        for chunk in [1, 7, 100_000] {
            let (s, c, sv, frames, anomalies) = Self.run(b, keyLog: KeyLog(text: b.keyLog), chunk: chunk)
            #expect(anomalies.isEmpty, "\(anomalies)")
            #expect(c == b.clientPlain)
            #expect(sv == b.serverPlain)
            #expect(s.info.version == "TLS 1.3")
            #expect(s.info.cipherSuiteID == suite)
            #expect(s.info.sni == "b.example")
            #expect(s.info.alpnOffered == ["xmpp-server"] && s.info.alpn == "xmpp-server")
            #expect(s.info.clientVersions == ["TLS 1.3"])   // GREASE skipped
            #expect(s.info.decryption == .decrypted && s.info.undecryptedBytes == 0)
            #expect(s.info.alerts.map(\.name) == ["close_notify"])
            if chunk == 1 { #expect(frames.count == 3 && Set(frames).count == 3) }
        }
    }

    @Test func withoutKeysParametersAreStillReported() {
        let b = Self.build(suite: 0x1303)
        let (s, c, sv, _, anomalies) = Self.run(b, keyLog: nil, chunk: 1000)
        #expect(c.isEmpty && sv.isEmpty && anomalies.isEmpty)
        #expect(s.info.cipherSuite == "TLS_CHACHA20_POLY1305_SHA256" && s.info.sni == "b.example")
        #expect(s.info.decryption == .noKeyLog && s.info.undecryptedBytes > 0)
    }

    @Test func wrongSecretStopsTheDirectionWithAnAnomaly() {
        let b = Self.build(suite: 0x1301)
        // Only the server's application secret is wrong: its handshake decrypts, then record 2 fails.
        let bad = b.keyLog.split(separator: "\n").map { line in
            line.hasPrefix("SERVER_TRAFFIC_SECRET_0") ? String(line.dropLast(2)) + "ff" : String(line)
        }.joined(separator: "\n")
        let (s, c, sv, _, anomalies) = Self.run(b, keyLog: KeyLog(text: bad), chunk: 50)
        #expect(c == b.clientPlain)
        #expect(sv.isEmpty)
        #expect(anomalies.count == 1)
        #expect(anomalies.first?.direction == .serverToClient)
        #expect(anomalies.first?.message.contains("protected record 2 of the server-to-client direction") == true)
        #expect(anomalies.first?.message.contains("failed authentication with the key log's secrets") == true)
        #expect(s.info.decryption == .failed)
    }

    @Test func garbageAfterProceedIsReportedOnce() {
        let s = TLSSession(connection: ConnectionID(1), keyLog: nil)
        var anomalies: [Anomaly] = []
        s.onAnomaly = { anomalies.append($0) }
        Array("<message/>".utf8).withUnsafeBytes { s.tlsBytes(.clientToServer, $0, at: 0, frame: FrameRef(input: 0, number: 4, time: .zero)) }
        Array("more".utf8).withUnsafeBytes { s.tlsBytes(.clientToServer, $0, at: 10, frame: FrameRef(input: 0, number: 5, time: .zero)) }
        #expect(anomalies.count == 1 && anomalies[0].message.contains("not a TLS record header"))
    }
}
