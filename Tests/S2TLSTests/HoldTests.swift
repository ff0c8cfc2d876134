import Testing
import S2Model
@testable import S2TLS

/// A session of a following key store (live) holds its records until all its secrets are
/// there, then decrypts them in their order, exactly as if the secrets had been there first.
struct HoldTests {
    static func feed(_ s: TLSSession, _ b: RecordLayerTests.Built, time: Int64 = 0) {
        var frame = 0
        func send(_ d: Direction, _ data: [UInt8]) {
            var i = 0
            while i < data.count {
                let n = min(9, data.count - i)
                frame += 1
                Array(data[i..<(i + n)]).withUnsafeBytes {
                    s.tlsBytes(d, $0, at: UInt64(i), frame: FrameRef(input: 0, number: frame, time: Timestamp(seconds: time, nanoseconds: Int32(frame))))
                }
                i += n
            }
        }
        let chLen = 5 + Int(b.client[3]) << 8 + Int(b.client[4])
        send(.clientToServer, Array(b.client[..<chLen]))
        send(.serverToClient, b.server)
        send(.clientToServer, Array(b.client[chLen...]))
    }

    @Test func tls13WaitsForAllFourSecretsThenDecryptsWhatItHeld() {
        let b = RecordLayerTests.build(suite: 0x1301)
        let lines = b.keyLog.split(separator: "\n")
        let store = TLSKeyStore(following: true)
        let s = TLSSession(connection: ConnectionID(1), keys: store)
        var plain: [[UInt8]] = [[], []]
        var anomalies: [Anomaly] = []
        var ended = 0
        s.onPlaintext = { d, bytes, _ in plain[d.rawValue] += bytes }
        s.onAnomaly = { anomalies.append($0) }
        s.onWaitEnded = { ended += 1 }
        Self.feed(s, b)
        #expect(s.isWaitingForSecrets && store.waitingSessions == 1 && store.statistics.bytesHeld > 0)
        #expect(plain == [[], []])
        // The handshake secrets alone (the server writes them first) are not enough.
        store.add(KeyLog(text: lines.filter { $0.contains("HANDSHAKE") }.joined(separator: "\n")))
        #expect(s.isWaitingForSecrets && ended == 0)
        store.add(KeyLog(text: lines.filter { !$0.contains("HANDSHAKE") }.joined(separator: "\n")))
        #expect(!s.isWaitingForSecrets && ended == 1)
        #expect(plain[0] == b.clientPlain && plain[1] == b.serverPlain)
        s.tlsFinish()
        #expect(anomalies.isEmpty)
        #expect(s.info.decryption == .decrypted && s.info.undecryptedBytes == 0)
        #expect(store.statistics == {
            var t = TLSHoldStatistics()
            t.sessionsHeld = 1
            t.sessionsReleased = 1
            return t
        }())
    }

    @Test func theWaitEndsAtTheCaptureTimeLimit() {
        let b = RecordLayerTests.build(suite: 0x1303)
        var limits = TLSHoldLimits()
        limits.seconds = 2
        let store = TLSKeyStore(following: true, limits: limits)
        let s = TLSSession(connection: ConnectionID(7), keys: store)
        var anomalies: [Anomaly] = []
        s.onAnomaly = { anomalies.append($0) }
        Self.feed(s, b, time: 100)
        store.expire(now: Timestamp(seconds: 101, nanoseconds: 0))
        #expect(s.isWaitingForSecrets)
        store.expire(now: Timestamp(seconds: 103, nanoseconds: 0))
        #expect(!s.isWaitingForSecrets)
        #expect(anomalies.count == 1 && anomalies[0].message.contains("within 2 s") && anomalies[0].connection == ConnectionID(7))
        #expect(s.info.decryption == .noSecrets && s.info.undecryptedBytes > 0 && s.info.decryptedBytes == 0)
        #expect(store.statistics.sessionsDropped == 1 && store.statistics.bytesDropped > 0 && store.statistics.bytesHeld == 0)
        // Secrets that come after the give-up change nothing.
        store.add(KeyLog(text: b.keyLog))
        #expect(s.info.decryptedBytes == 0)
    }

    @Test func aFixedKeyLogNeverWaits() {
        let b = RecordLayerTests.build(suite: 0x1302)
        let s = TLSSession(connection: ConnectionID(1), keyLog: KeyLog(text: ""))
        var anomalies: [Anomaly] = []
        s.onAnomaly = { anomalies.append($0) }
        Self.feed(s, b)
        #expect(!s.isWaitingForSecrets)
        #expect(s.info.decryption == .noSecrets && anomalies.count == 1)
    }

    @Test func theOldestSecretsAreForgottenBeyondTheSessionBound() {
        var limits = TLSHoldLimits()
        limits.maxSessions = 3
        let store = TLSKeyStore(following: true, limits: limits)
        for i in 1...5 {
            store.add(KeyLog(text: "CLIENT_RANDOM \(String(repeating: String(format: "%02x", i), count: 32)) \(String(repeating: "00", count: 48))"))
        }
        #expect(store.keyLog.sessionCount == 3 && store.statistics.sessionsForgotten == 2)
        #expect(!store.keyLog.hasSession(clientRandom: [UInt8](repeating: 1, count: 32)))
        #expect(store.keyLog.hasSession(clientRandom: [UInt8](repeating: 5, count: 32)))
    }
}
