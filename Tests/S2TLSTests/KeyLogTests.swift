import Crypto
import Testing
import S2Model
@testable import S2TLS

func bytes(_ hex: String) -> [UInt8] { KeyLog.hex(hex.filter { !$0.isWhitespace })! }

struct KeyLogTests {
    @Test func parsesNSSKeyLogLines() {
        let r1 = String(repeating: "ab", count: 32), r2 = String(repeating: "01", count: 32)
        let log = KeyLog(text: """
            # comment
            CLIENT_RANDOM \(r1) \(String(repeating: "11", count: 48))
            CLIENT_HANDSHAKE_TRAFFIC_SECRET \(r2) \(String(repeating: "22", count: 32))
            SERVER_TRAFFIC_SECRET_0 \(r2) \(String(repeating: "33", count: 32))

            garbage line
            CLIENT_RANDOM shortrandom 00
            """)
        #expect(log.sessionCount == 2)
        #expect(log.malformedLines == 2)
        #expect(log.secret("CLIENT_RANDOM", clientRandom: bytes(r1)) == [UInt8](repeating: 0x11, count: 48))
        #expect(log.secret("SERVER_TRAFFIC_SECRET_0", clientRandom: bytes(r2)) == [UInt8](repeating: 0x33, count: 32))
        #expect(log.secret("CLIENT_TRAFFIC_SECRET_0", clientRandom: bytes(r2)) == nil)
    }

    @Test func unreadableOrEmptyKeyLogIsAnError() {
        #expect(throws: KeyLogError.self) { try KeyLog(path: "/nonexistent/keylog") }
        #expect(throws: KeyLogError.self) { try KeyLog(path: "/dev/null") }
    }

    /// RFC 8448 §3 (Simple 1-RTT Handshake, TLS_AES_128_GCM_SHA256): the server handshake
    /// traffic secret gives the record key and IV through HKDF-Expand-Label.
    @Test func hkdfExpandLabelMatchesRFC8448() {
        let secret = bytes("b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38")
        let p = RecordProtection.tls13(suite: CipherSuite.lookup(0x1301), secret: secret)!
        #expect(p.key == bytes("3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc"))
        #expect(p.iv == bytes("5d 31 3e b2 67 12 76 ee 13 00 0b 30"))
    }

    /// The TLS 1.2 PRF (P_SHA256) test vector published with RFC 5246 implementations.
    @Test func tls12PRFMatchesKnownVector() {
        let out = SuiteHash.sha256.prf(secret: bytes("9bbe436ba940f017b17652849a71db35"), label: "test label",
                                       seed: bytes("a0ba9f936cda311827a6f796ffd5198c"), length: 100)
        #expect(Array(out.prefix(16)) == bytes("e3f229ba727be17b8d122620557cd453"))
        #expect(out.count == 100)
    }
}
